import Gateway
import Hummingbird
import NimbusCore

extension ImageAPI {
    /// `/v2/schemas/*`: the JSON schemas clients such as glanceclient read to learn the attributes.
    static func registerSchemas(_ routes: inout ServiceRoutes) {
        let image = imageSchema()
        routes.get("/v2/schemas/image") { _, _ in .json(image) }
        routes.get("/v2/schemas/images") { _, _ in
            .json([
                "name": "images", "properties": [
                    "images": ["type": "array", "items": image], "schema": ["type": "string"],
                    "first": ["type": "string"], "next": ["type": "string"],
                ],
                "links": [["rel": "first", "href": "{first}"], ["rel": "next", "href": "{next}"], ["rel": "describedby", "href": "{schema}"]],
            ])
        }
        let member = memberSchema()
        routes.get("/v2/schemas/member") { _, _ in .json(member) }
        routes.get("/v2/schemas/members") { _, _ in
            .json(["name": "members", "properties": ["members": ["type": "array", "items": member], "schema": ["type": "string"]],
                   "links": [["rel": "describedby", "href": "{schema}"]]])
        }
    }

    static func imageSchema() -> JSONValue {
        func string(_ description: String, readOnly: Bool = false, nullable: Bool = false, maxLength: Int64? = nil) -> JSONValue {
            var schema: [String: JSONValue] = ["type": nullable ? ["null", "string"] : "string", "description": .string(description)]
            if readOnly { schema["readOnly"] = true }
            if let maxLength { schema["maxLength"] = .int(maxLength) }
            return .object(schema)
        }
        func integer(_ description: String, readOnly: Bool = false) -> JSONValue {
            readOnly ? ["type": ["null", "integer"], "description": .string(description), "readOnly": true]
                : ["type": "integer", "description": .string(description)]
        }
        func choice(_ description: String, _ values: [String], nullable: Bool = false) -> JSONValue {
            ["type": nullable ? ["null", "string"] : "string", "description": .string(description),
             "enum": .array((nullable ? [JSONValue.null] : []) + values.map { .string($0) })]
        }
        return [
            "name": "image", "additionalProperties": ["type": "string"],
            "properties": [
                "id": ["type": "string", "description": "An identifier for the image", "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"],
                "name": string("Descriptive name for the image", nullable: true, maxLength: 255),
                "status": choice("Status of the image", ["queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated"]),
                "visibility": choice("Scope of image accessibility", ImageWire.visibilities.sorted()),
                "protected": ["type": "boolean", "description": "If true, image will not be deletable."],
                "os_hidden": ["type": "boolean", "description": "If true, image will not appear in default image list response."],
                "checksum": string("md5 hash of image contents.", readOnly: true, nullable: true, maxLength: 32),
                "os_hash_algo": string("Algorithm to calculate the os_hash_value", readOnly: true, nullable: true, maxLength: 64),
                "os_hash_value": string("Hexdigest of the image contents using the algorithm specified by the os_hash_algo", readOnly: true, nullable: true, maxLength: 128),
                "owner": string("Owner of the image", readOnly: true, nullable: true, maxLength: 255),
                "size": integer("Size of image file in bytes", readOnly: true),
                "virtual_size": integer("Virtual size of image in bytes", readOnly: true),
                "container_format": choice("Format of the container", ImageWire.containerFormats.sorted(), nullable: true),
                "disk_format": choice("Format of the disk", ImageWire.diskFormats.sorted(), nullable: true),
                "created_at": string("Date and time of image registration", readOnly: true),
                "updated_at": string("Date and time of the last image modification", readOnly: true),
                "tags": ["type": "array", "description": "List of strings related to the image", "items": ["type": "string", "maxLength": 255]],
                "direct_url": string("URL to access the image file kept in external store", readOnly: true),
                "min_ram": integer("Amount of ram (in MB) required to boot image."),
                "min_disk": integer("Amount of disk space (in GB) required to boot image."),
                "self": string("An image self url", readOnly: true),
                "file": string("An image file url", readOnly: true),
                "stores": string("Store in which image data resides.", readOnly: true),
                "schema": string("An image schema url", readOnly: true),
                "locations": ["type": "array", "description": "A set of URLs to access the image file kept in external store", "items": ["type": "object"]],
                "kernel_id": string("ID of image stored in Glance that should be used as the kernel when booting an AMI-style image.", nullable: true),
                "ramdisk_id": string("ID of image stored in Glance that should be used as the ramdisk when booting an AMI-style image.", nullable: true),
            ],
            "links": [["rel": "self", "href": "{self}"], ["rel": "enclosure", "href": "{file}"], ["rel": "describedby", "href": "{schema}"]],
        ]
    }

    static func memberSchema() -> JSONValue {
        [
            "name": "member",
            "properties": [
                "created_at": ["type": "string", "description": "Date and time of image member creation"],
                "image_id": ["type": "string", "description": "An identifier for the image"],
                "member_id": ["type": "string", "description": "An identifier for the image member (tenantId)"],
                "status": ["type": "string", "description": "The status of this image member", "enum": ["pending", "accepted", "rejected"]],
                "updated_at": ["type": "string", "description": "Date and time of last modification of image member"],
                "schema": ["type": "string", "readOnly": true],
            ],
        ]
    }
}
