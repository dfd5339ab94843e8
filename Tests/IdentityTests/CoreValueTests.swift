import Foundation
import NimbusCore
import Testing

@Suite struct CoreValueTests {
    @Test func timestampsFormatAsKeystoneDoes() {
        let date = Date(timeIntervalSince1970: 1_800_000_000.25)
        #expect(Timestamp.keystone(date) == "2027-01-15T08:00:00.250000Z")
        #expect(Timestamp.seconds(date) == "2027-01-15T08:00:00Z")
    }

    @Test(arguments: ["2027-01-15T08:00:00Z", "2027-01-15T08:00:00.000000Z", "2027-01-15T09:00:00+01:00", "2027-01-15T08:00:00"])
    func timestampsParseClientForms(text: String) {
        #expect(Timestamp.parse(text)?.timeIntervalSince1970 == 1_800_000_000)
    }

    @Test func invalidTimestampsAreRejected() {
        #expect(Timestamp.parse("yesterday") == nil)
        #expect(Timestamp.parse("2027-13-01T00:00:00Z") == nil)
    }

    @Test func jsonSerializesEscapesAndParsesBack() throws {
        let value: JSONValue = ["text": "quote \" slash \\ newline \n tab \t bell \u{07}", "n": 3, "f": .double(1.5), "list": [true, nil]]
        let text = value.serialized()
        #expect(text.contains("\\u0007"))
        #expect(try JSONValue.parse(Array(text.utf8)) == value)
    }

    @Test func malformedJSONIsABadRequest() {
        #expect(throws: NimbusError.self) { try JSONValue.parse(Array("{\"a\":".utf8)) }
    }

    @Test func fieldReaderValidatesTypesAndLengths() throws {
        let reader = try FieldReader(body: ["project": ["name": "x", "enabled": "yes", "long": .string(String(repeating: "a", count: 70))]], root: "project")
        #expect(try reader.string("name", required: true) == "x")
        #expect(throws: NimbusError.self) { try reader.bool("enabled") }
        #expect(throws: NimbusError.self) { try reader.string("long", maxLength: 64) }
        #expect(throws: NimbusError.self) { try reader.string("missing", required: true) }
        #expect(throws: NimbusError.self) { try reader.rejectUnknown(["name"]) }
        #expect(throws: NimbusError.self) { try FieldReader(body: ["other": [:]], root: "project") }
    }
}

@Suite struct JSONParserTests {
    @Test(arguments: [
        #"{"a": [1, -2.5e3, true, false, null, "x\"y\\z\u00e9\ud83d\ude00"], "b": {}}"#,
        "[]", " 0 ", "\"\\n\\t\\/\"", "-0.0", "123456789012",
    ])
    func agreesWithFoundation(text: String) throws {
        let mine = try JSONValue.parse(Array(text.utf8))
        let foundation = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(Self.normalized(mine) == Self.normalized(foundation))
    }

    /// Foundation reads whole-valued numbers like `-2.5e3` as integers; both are the same JSON number.
    static func normalized(_ value: JSONValue) -> JSONValue {
        switch value {
        case .double(let number) where number == number.rounded() && abs(number) < 9e15: .int(Int64(number))
        case .array(let items): .array(items.map(normalized))
        case .object(let fields): .object(fields.mapValues(normalized))
        default: value
        }
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"\u{01}\"", "tru", "[1] x", "\"\\x\"", "{\"a\":1,}"])
    func rejectsMalformed(text: String) {
        #expect(throws: NimbusError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    @Test func rejectsDeepNesting() {
        let text = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(throws: NimbusError.self) { try JSONValue.parse(Array(text.utf8)) }
    }
}
