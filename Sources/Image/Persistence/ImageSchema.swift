import Store

/// Image's tables: image records and their members.
public enum ImageSchema {
    public static let migrations: [Migration] = [
        Migration(id: "image-0001", sql: [
            """
            CREATE TABLE image_images (
                id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL, visibility TEXT NOT NULL,
                protected BOOLEAN NOT NULL, os_hidden BOOLEAN NOT NULL, owner TEXT NOT NULL,
                disk_format TEXT, container_format TEXT, min_disk BIGINT NOT NULL, min_ram BIGINT NOT NULL,
                size BIGINT, virtual_size BIGINT, checksum TEXT, os_hash_algo TEXT, os_hash_value TEXT,
                tags TEXT NOT NULL, properties TEXT NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL)
            """,
            "CREATE INDEX image_images_owner ON image_images (owner)",
            "CREATE INDEX image_images_visibility ON image_images (visibility)",
            """
            CREATE TABLE image_members (
                id TEXT PRIMARY KEY,
                image_id TEXT NOT NULL REFERENCES image_images(id) ON DELETE CASCADE,
                member_id TEXT NOT NULL, status TEXT NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
                UNIQUE (image_id, member_id))
            """,
            "CREATE INDEX image_members_member ON image_members (member_id)",
        ]),
    ]

    static let images = RecordTable("image_images", columns: [
        .init("id"), .init("name"), .init("status"), .init("visibility"), .init("protected", .bool),
        .init("os_hidden", .bool), .init("owner"), .init("disk_format"), .init("container_format"),
        .init("min_disk", .int), .init("min_ram", .int), .init("size", .int), .init("virtual_size", .int),
        .init("checksum"), .init("os_hash_algo"), .init("os_hash_value"), .init("tags", .json),
        .init("properties", .json), .init("created_at"), .init("updated_at"),
    ])

    static let members = RecordTable("image_members", columns: [
        .init("id"), .init("image_id"), .init("member_id"), .init("status"), .init("created_at"), .init("updated_at"),
    ])
}
