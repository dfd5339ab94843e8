import Foundation

/// OpenStack timestamps: ISO 8601 in UTC.
///
/// Formatted by hand because this runs on every token validation and DateFormatter is slow and not Sendable.
public enum Timestamp {
    /// `2026-11-27T07:10:00.000000Z`, as Keystone writes `expires_at` and `issued_at`.
    public static func keystone(_ date: Date) -> String { format(date, fraction: true, zulu: true) }

    /// `2026-11-27T07:10:00Z`.
    public static func seconds(_ date: Date) -> String { format(date, fraction: false, zulu: true) }

    static func format(_ date: Date, fraction: Bool, zulu: Bool) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        let micros = Int(((interval - Double(seconds)) * 1_000_000).rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var out = pad(Int(parts.tm_year) + 1900, 4) + "-" + pad(Int(parts.tm_mon) + 1, 2) + "-" + pad(Int(parts.tm_mday), 2)
        out += "T" + pad(Int(parts.tm_hour), 2) + ":" + pad(Int(parts.tm_min), 2) + ":" + pad(Int(parts.tm_sec), 2)
        if fraction { out += "." + pad(micros, 6) }
        if zulu { out += "Z" }
        return out
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    /// Parses the ISO 8601 forms OpenStack clients send: with or without fraction, `Z` or an offset, or none (UTC).
    public static func parse(_ text: String) -> Date? {
        var body = Substring(text)
        var offset = 0
        if body.hasSuffix("Z") || body.hasSuffix("z") {
            body = body.dropLast()
        } else if let signIndex = body.lastIndex(where: { $0 == "+" || $0 == "-" }),
                  body.distance(from: body.startIndex, to: signIndex) > 10 {
            let zone = body[body.index(after: signIndex)...].replacingOccurrences(of: ":", with: "")
            guard zone.count == 4, let hours = Int(zone.prefix(2)), let minutes = Int(zone.suffix(2)) else { return nil }
            offset = (hours * 3600 + minutes * 60) * (body[signIndex] == "+" ? 1 : -1)
            body = body[..<signIndex]
        }
        var fraction = 0.0
        if let dot = body.firstIndex(of: ".") {
            guard let value = Double("0" + body[dot...]) else { return nil }
            fraction = value
            body = body[..<dot]
        }
        let fields = body.split(whereSeparator: { "-T: t".contains($0) }).map { Int($0) }
        guard fields.count == 6 || fields.count == 5 || fields.count == 3, !fields.contains(nil) else { return nil }
        let numbers = fields.map { $0! } + Array(repeating: 0, count: 6 - fields.count)
        guard (1...12).contains(numbers[1]), (1...31).contains(numbers[2]), numbers[3] < 24, numbers[4] < 60, numbers[5] < 61
        else { return nil }
        var parts = tm()
        parts.tm_year = Int32(numbers[0] - 1900)
        parts.tm_mon = Int32(numbers[1] - 1)
        parts.tm_mday = Int32(numbers[2])
        parts.tm_hour = Int32(numbers[3])
        parts.tm_min = Int32(numbers[4])
        parts.tm_sec = Int32(numbers[5])
        let epoch = timegm(&parts)
        return Date(timeIntervalSince1970: Double(epoch - offset) + fraction)
    }
}
