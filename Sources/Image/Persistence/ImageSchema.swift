import Store

/// Image's tables: image records, their members and their import tasks.
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
        // Glance 2.12's image tasks: one row per import, which `GET /v2/images/{id}/tasks` shows.
        Migration(id: "image-0002", sql: [
            """
            CREATE TABLE image_tasks (
                id TEXT PRIMARY KEY,
                image_id TEXT NOT NULL REFERENCES image_images(id) ON DELETE CASCADE,
                type TEXT NOT NULL, status TEXT NOT NULL, owner TEXT NOT NULL, user_id TEXT NOT NULL,
                request_id TEXT NOT NULL, input TEXT NOT NULL, message TEXT NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL, expires_at TEXT)
            """,
            "CREATE INDEX image_tasks_image ON image_tasks (image_id)",
        ]),
    ]

    static let images = RecordTable("image_images", columns: [
        .init("id"), .init("name"), .init("status"), .init("visibility"), .init("protected", .bool),
        .init("os_hidden", .bool), .init("owner"), .init("disk_format"), .init("container_format"),
        .init("min_disk", .int), .init("min_ram", .int), .init("size", .int), .init("virtual_size", .int),
        .init("checksum"), .init("os_hash_algo"), .init("os_hash_value"), .init("tags", .json),
        .init("properties", .json), .init("created_at"), .init("updated_at"),
    ])

    static let tasks = RecordTable("image_tasks", columns: [
        .init("id"), .init("image_id"), .init("type"), .init("status"), .init("owner"), .init("user_id"),
        .init("request_id"), .init("input", .json), .init("message"), .init("created_at"), .init("updated_at"),
        .init("expires_at"),
    ])

    static let members = RecordTable("image_members", columns: [
        .init("id"), .init("image_id"), .init("member_id"), .init("status"), .init("created_at"), .init("updated_at"),
    ])
}
