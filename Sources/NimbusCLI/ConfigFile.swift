import Foundation

/// Reads the flat `key = value` subset of TOML that Nimbus config files use (strings, numbers,
/// booleans, `#` comments). Section headers are accepted and prefix keys as `section.key`.
enum ConfigFile {
    static func load(_ path: String) throws -> [String: String] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var values: [String: String] = [:]
        var section = ""
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces) + "."
                continue
            }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigError(message: "\(path):\(number + 1): expected key = value")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\"") {
                guard let close = value.dropFirst().firstIndex(of: "\"") else {
                    throw ConfigError(message: "\(path):\(number + 1): unterminated string")
                }
                value = String(value[value.index(after: value.startIndex)..<close])
            } else if let hash = value.firstIndex(of: "#") {
                value = value[..<hash].trimmingCharacters(in: .whitespaces)
            }
            values[section + key] = value
        }
        return values
    }

    struct ConfigError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}
