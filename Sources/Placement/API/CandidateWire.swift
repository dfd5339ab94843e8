import Hummingbird
import NIOCore

/// The body of `GET /allocation_candidates`, written straight into bytes.
///
/// With a thousand candidates the body holds some ten thousand JSON objects (~450 kB); building
/// them as `JSONValue` dictionaries, or even as concatenated `String`s, cost more than finding the
/// candidates. Every string written here is a uuid, a resource class or a trait name, all validated
/// to `[A-Za-z0-9_-]` on the way in, so none needs escaping.
enum CandidateWire {
    /// `allocation_requests` and `provider_summaries`, shaped by microversion: a list per request
    /// before 1.12, `traits` from 1.17, every class in summaries from 1.27 (only the requested
    /// ones before), tree uuids from 1.29, `mappings` from 1.34.
    static func response(_ candidates: [Candidate], requested: [String: Int64], _ version: Microversion) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: render(candidates, requested: requested, version)))
    }

    static func render(_ candidates: [Candidate], requested: [String: Int64], _ version: Microversion) -> ByteBuffer {
        var amounts = "{"
        for (index, (name, amount)) in requested.sorted(by: { $0.key < $1.key }).enumerated() {
            amounts += (index > 0 ? ",\"" : "\"") + name + "\":" + String(amount)
        }
        amounts += "}"
        // The pieces around each uuid in an allocation request, assembled once per response.
        let (head, middle, tail) = version >= 12
            ? ("{\"allocations\":{\"", "\":{\"resources\":" + amounts + "}}" + (version >= 34 ? ",\"mappings\":{\"\":[\"" : ""),
               version >= 34 ? "\"]}}" : "}")
            : ("{\"allocations\":[{\"resource_provider\":{\"uuid\":\"", "\"},\"resources\":" + amounts + "}]}", "")
        // Appending to a byte array is several times cheaper per call than to a ByteBuffer or a String.
        var out: [UInt8] = []
        out.reserveCapacity(128 + candidates.count * (version >= 27 ? 460 : 320))
        out.append(contentsOf: "{\"allocation_requests\":[".utf8)
        for (index, candidate) in candidates.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: head.utf8)
            out.append(contentsOf: candidate.provider.uuid.utf8)
            out.append(contentsOf: middle.utf8)
            if version >= 34 { out.append(contentsOf: candidate.provider.uuid.utf8) }
            out.append(contentsOf: tail.utf8)
        }
        out.append(contentsOf: "],\"provider_summaries\":{".utf8)
        for (index, candidate) in candidates.enumerated() {
            out.append(contentsOf: index > 0 ? ",\"".utf8 : "\"".utf8)
            out.append(contentsOf: candidate.provider.uuid.utf8)
            out.append(contentsOf: "\":{\"resources\":{".utf8)
            var first = true
            for (name, usage) in candidate.resources where version >= 27 || requested[name] != nil {
                out.append(contentsOf: first ? "\"".utf8 : ",\"".utf8)
                first = false
                out.append(contentsOf: name.utf8)
                out.append(contentsOf: "\":{\"capacity\":".utf8)
                out.append(contentsOf: String(usage.capacity).utf8)
                out.append(contentsOf: ",\"used\":".utf8)
                out.append(contentsOf: String(usage.used).utf8)
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "}"))
            if version >= 17 {
                out.append(contentsOf: ",\"traits\":[".utf8)
                for (position, trait) in candidate.traits.enumerated() {
                    out.append(contentsOf: position > 0 ? ",\"".utf8 : "\"".utf8)
                    out.append(contentsOf: trait.utf8)
                    out.append(UInt8(ascii: "\""))
                }
                out.append(UInt8(ascii: "]"))
            }
            if version >= 29 {
                if let parent = candidate.provider.parentProviderUUID {
                    out.append(contentsOf: ",\"parent_provider_uuid\":\"".utf8)
                    out.append(contentsOf: parent.utf8)
                    out.append(UInt8(ascii: "\""))
                } else {
                    out.append(contentsOf: ",\"parent_provider_uuid\":null".utf8)
                }
                out.append(contentsOf: ",\"root_provider_uuid\":\"".utf8)
                out.append(contentsOf: candidate.provider.rootProviderUUID.utf8)
                out.append(UInt8(ascii: "\""))
            }
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: "}}".utf8)
        return ByteBuffer(bytes: out)
    }
}
