import Foundation

extension LinuxDataplane {
    /// Removes everything this dataplane made on the host: links with our prefixes, our
    /// namespaces (and whatever runs in them), both nftables tables, metadata listeners, and the
    /// DHCP state files. Used by tests and `--cleanup`; best effort, never throws.
    public func teardownAll() async {
        _ = try? await serialized { await $0.teardownNow() }
    }

    private func teardownNow() async {
        for network in Set(listeners.keys).union(appliedDHCP.keys) { await stopDHCP(network: network) }
        if let entries = try? FileManager.default.contentsOfDirectory(atPath: stateDirectory.appendingPathComponent("dhcp").path) {
            for network in entries { await stopDHCP(network: network) }
        }
        for namespace in ownedNamespaces() { await deleteNamespace(namespace) }
        try? FileManager.default.removeItem(at: stateDirectory.appendingPathComponent("router"))
        if let links = try? await observeLinks() {
            let ours = links.keys.filter { name in DataplaneNames.interfacePrefixes.contains { name.hasPrefix($0) } }
            // Taps and veths first, bridges last (a port leaves its bridge when deleted anyway).
            let ordered = ours.sorted { ($0.hasPrefix("nbr-") ? 1 : 0, $0) < ($1.hasPrefix("nbr-") ? 1 : 0, $1) }
            do { try await runner.ipBatch(ordered.map { "link del \($0)" }) } catch {
                logger.warning("teardown: some links remain", metadata: ["error": "\(error)"])
            }
        }
        _ = try? await runner.host(["nft", "-f", "-"], input: FilterRuleset.removal)
        appliedNetworks = [:]
        appliedRuleset = nil
        appliedDHCP = [:]
        appliedRouters = [:]
    }
}
