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
