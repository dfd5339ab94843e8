/// The resource classes and traits every Placement knows without being told, and the rules for
/// custom ones (`CUSTOM_` + `[A-Z0-9_]`).
///
/// Standard names are constants, not rows: they exist on every deployment from the first start,
/// cannot be deleted, and keeping them out of the database means no migration when os-traits grows.
public enum StandardNames {
    /// os-resource-classes' `STANDARDS`, in its order.
    public static let resourceClasses: [String] = [
        "VCPU", "MEMORY_MB", "DISK_GB", "PCI_DEVICE", "SRIOV_NET_VF", "NUMA_SOCKET", "NUMA_CORE", "NUMA_THREAD",
        "NUMA_MEMORY_MB", "IPV4_ADDRESS", "VGPU", "VGPU_DISPLAY_HEAD", "NET_BW_EGR_KILOBIT_PER_SEC",
        "NET_BW_IGR_KILOBIT_PER_SEC", "PCPU", "MEM_ENCRYPTION_CONTEXT", "FPGA", "PGPU",
        "NET_PACKET_RATE_KILOPACKET_PER_SEC", "NET_PACKET_RATE_EGR_KILOPACKET_PER_SEC",
        "NET_PACKET_RATE_IGR_KILOPACKET_PER_SEC",
    ]
    public static let resourceClassSet = Set(resourceClasses)

    /// The os-traits that Nova, Neutron and Cinder report or request most; a subset of the library's
    /// few hundred, enough for scheduling on CPU features, image types, storage and networking.
    public static let traits: [String] = {
        let cpu = ["AVX", "AVX2", "AVX512F", "AESNI", "SSE", "SSE2", "SSE3", "SSSE3", "SSE41", "SSE42", "FMA3", "SVM", "VMX",
                   "MMX", "BMI", "BMI2", "F16C", "SHA", "MPX", "CLMUL", "ABM", "AMD_SEV"].map { "HW_CPU_X86_" + $0 }
        let compute = [
            "NODE", "STATUS_DISABLED", "VOLUME_ATTACH", "VOLUME_ATTACH_WITH_TAG", "VOLUME_EXTEND", "VOLUME_MULTI_ATTACH",
            "NET_ATTACH_INTERFACE", "NET_ATTACH_INTERFACE_WITH_TAG", "DEVICE_TAGGING", "TRUSTED_CERTS", "RESCUE_BFV",
            "ACCELERATORS", "SOCKET_PCI_NUMA_AFFINITY", "REMOTE_MANAGED_PORTS", "ADDRESS_SPACE_PASSTHROUGH",
            "ADDRESS_SPACE_EMULATED", "EPHEMERAL_ENCRYPTION", "SECURITY_UEFI_SECURE_BOOT", "SECURITY_TPM_1_2",
            "SECURITY_TPM_2_0", "IMAGE_TYPE_QCOW2", "IMAGE_TYPE_RAW", "IMAGE_TYPE_ISO", "IMAGE_TYPE_AMI", "IMAGE_TYPE_ARI",
            "IMAGE_TYPE_AKI", "IMAGE_TYPE_VDI", "IMAGE_TYPE_VMDK", "IMAGE_TYPE_VHD", "IMAGE_TYPE_PLOOP",
            "NET_VIF_MODEL_VIRTIO", "NET_VIF_MODEL_E1000", "NET_VIF_MODEL_E1000E", "NET_VIF_MODEL_RTL8139",
            "NET_VIF_MODEL_NE2K_PCI", "NET_VIF_MODEL_PCNET", "GRAPHICS_MODEL_VIRTIO", "GRAPHICS_MODEL_VGA",
            "GRAPHICS_MODEL_CIRRUS", "GRAPHICS_MODEL_BOCHS", "GRAPHICS_MODEL_NONE", "STORAGE_BUS_VIRTIO",
            "STORAGE_BUS_SCSI", "STORAGE_BUS_IDE", "STORAGE_BUS_SATA", "STORAGE_BUS_USB", "STORAGE_BUS_FDC",
            "FIRMWARE_BIOS", "FIRMWARE_UEFI", "SOUND_MODEL_ICH9", "VIOMMU_MODEL_AUTO", "VIOMMU_MODEL_VIRTIO",
        ].map { "COMPUTE_" + $0 }
        let other = [
            "HW_ARCH_X86_64", "HW_ARCH_AARCH64", "HW_ARCH_PPC64LE", "HW_ARCH_S390X", "HW_ARCH_RISCV64",
            "HW_CPU_HYPERTHREADING", "HW_NUMA_ROOT", "HW_NIC_SRIOV", "HW_NIC_SRIOV_MULTIQUEUE", "HW_NIC_OFFLOAD_TSO",
            "HW_NIC_OFFLOAD_GSO", "HW_NIC_OFFLOAD_GRO", "HW_NIC_OFFLOAD_RX", "HW_NIC_OFFLOAD_TX", "HW_GPU_API_VULKAN",
            "HW_GPU_API_OPENGL_4_6", "STORAGE_DISK_HDD", "STORAGE_DISK_SSD", "MISC_SHARES_VIA_AGGREGATE",
            "OWNER_CINDER", "OWNER_NOVA", "OWNER_NEUTRON",
        ]
        return (cpu + compute + other).sorted()
    }()
    public static let traitSet = Set(traits)

    /// `CUSTOM_` followed by upper-case letters, digits and underscores, at most 255 characters.
    public static func isValidCustom(_ name: String) -> Bool {
        name.hasPrefix("CUSTOM_") && name.count > "CUSTOM_".count && name.utf8.count <= 255
            && name.utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
    }
}
