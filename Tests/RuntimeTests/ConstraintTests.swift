import Foundation
import Generated
import SitrepRuntime
import Testing

/// Every constraint kind the generator enforces on decode, shown on the real contract's types.
@Suite("generated decoders")
struct ConstraintTests {
    /// Decodes `text` as `T`, returning the failures as `pointer: message`.
    func failures<T: JSONDecodable>(_ type: T.Type, _ text: String) throws -> [String] {
        var errors = ValidationErrors()
        let value = try JSONParser.parse(Array(text.utf8))
        let decoded = T(json: value, at: "/body", errors: &errors)
        #expect((decoded == nil) == !errors.isEmpty, "a decode fails exactly when it reports errors")
        return errors.items.map { "\($0.pointer): \($0.message)" }
    }

    let recipient = #"{"name":"Fatima Al Mansoori","phone":"+971501234567","email":"fatima@example.ae","language":"ar","channels":["whatsapp"]}"#
    let signal =
        #"{"source":"reuters","sourceId":"X1","title":"T","summary":"S","category":"economic","severity":"high","confidence":0.5,"modelVersion":"m1","publishedAt":"2025-11-26T08:00:00Z"}"#

    @Test func validValuesDecode() throws {
        #expect(try failures(RecipientCreate.self, recipient) == [])
        #expect(try failures(SignalInput.self, signal) == [])
    }

    @Test func required() throws {
        #expect(
            try failures(RecipientCreate.self, recipient.replacingOccurrences(of: #""name":"Fatima Al Mansoori","#, with: "")) == [
                "/body/name: is required"
            ])
    }

    @Test func minLengthAndMaxLength() throws {
        #expect(
            try failures(RecipientCreate.self, recipient.replacingOccurrences(of: "Fatima Al Mansoori", with: "")) == [
                "/body/name: must not be empty"
            ])
        let long = String(repeating: "x", count: 201)
        #expect(
            try failures(RecipientCreate.self, recipient.replacingOccurrences(of: "Fatima Al Mansoori", with: long)) == [
                "/body/name: must be at most 200 characters long"
            ])
    }

    @Test func pattern() throws {
        #expect(
            try failures(RecipientCreate.self, recipient.replacingOccurrences(of: "+971501234567", with: "0501234567"))
                == [#"/body/phone: must match the pattern ^\+[1-9][0-9]{6,14}$"#])
    }

    @Test func formats() throws {
        #expect(
            try failures(RecipientCreate.self, recipient.replacingOccurrences(of: "fatima@example.ae", with: "fatima")) == [
                "/body/email: must be an email address"
            ])
        #expect(
            try failures(SignalInput.self, signal.replacingOccurrences(of: "2025-11-26T08:00:00Z", with: "2025-13-26T08:00:00Z")) == [
                "/body/publishedAt: must be an RFC 3339 date-time, e.g. 2026-11-26T08:00:00Z"
            ])
        #expect(
            try failures(SignalInput.self, signal.replacingOccurrences(of: #""modelVersion""#, with: #""sourceUrl":"reuters.com/x","modelVersion""#))
                == ["/body/sourceUrl: must be an absolute URI"])
        let action =
            #"{"title":"Brief the minister","ownerId":"t:o","ownerName":"Omar","dueDate":"2026-02-30","priority":"high","briefingIds":["nope"]}"#
        #expect(try failures(ActionCreate.self, action) == ["/body/dueDate: must be a date (YYYY-MM-DD)", "/body/briefingIds/0: must be a UUID"])
    }

    @Test func enumsRejectUnknownValues() throws {
        #expect(
            try failures(RecipientCreate.self, recipient.replacingOccurrences(of: #""ar""#, with: #""fr""#)) == [
                "/body/language: must be one of: ar, en"
            ])
    }

    @Test func numericBounds() throws {
        #expect(try failures(SignalInput.self, signal.replacingOccurrences(of: "0.5", with: "-0.1")) == ["/body/confidence: must be at least 0"])
        #expect(try failures(SignalInput.self, signal.replacingOccurrences(of: "0.5", with: "\"high\"")) == ["/body/confidence: must be a number"])
        #expect(try failures(ActionUpdateCreate.self, #"{"note":"Done","progress":101}"#) == ["/body/progress: must be at most 100"])
        #expect(try failures(ActionUpdateCreate.self, #"{"note":"Done","progress":1.5}"#) == ["/body/progress: must be an integer"])
    }

    @Test func arrayBounds() throws {
        let tags = "[" + (0..<21).map { "\"t\($0)\"" }.joined(separator: ",") + "]"
        #expect(
            try failures(SignalInput.self, signal.replacingOccurrences(of: #""modelVersion""#, with: #""tags":\#(tags),"modelVersion""#)) == [
                "/body/tags: must have at most 20 items"
            ])
        #expect(try failures(SignalBatch.self, #"{"items":[]}"#) == ["/body/items: must not be empty"])
    }

    @Test func nullability() throws {
        // region is nullable: an explicit null is fine; status is not.
        #expect(try failures(SignalInput.self, signal.replacingOccurrences(of: #""modelVersion""#, with: #""region":null,"modelVersion""#)) == [])
        #expect(try failures(SignalTriage.self, #"{"status":null}"#) == ["/body/status: must not be null"])
    }

    @Test func unknownPropertiesAndWrongTypes() throws {
        #expect(try failures(SignalTriage.self, #"{"status":"escalated","colour":"red"}"#) == ["/body/colour: is not a known property"])
        #expect(try failures(SignalTriage.self, #"["escalated"]"#) == ["/body: must be an object"])
        #expect(
            try failures(SignalInput.self, signal.replacingOccurrences(of: #""title":"T""#, with: #""title":5"#)) == ["/body/title: must be a string"]
        )
    }
}

/// Encoder and decoder agree with Foundation's JSONSerialization on every schema's example and on
/// random values.
@Suite("wire round trip")
struct RoundTripTests {
    static func foundation(_ bytes: [UInt8]) throws -> NSObject {
        try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]) as! NSObject
    }

    @Test func everySchemaExampleRoundTrips() throws {
        var checked = 0
        for name in SitrepSchemas.names {
            guard let example = SitrepSchemas.examples[name] else { continue }
            var errors = ValidationErrors()
            let value = try JSONParser.parse(Array(example.utf8))
            let out = SitrepSchemas.roundTrip(name, value, errors: &errors)
            #expect(errors.isEmpty, "\(name)'s example breaks its own schema: \(errors.items)")
            guard let out else { continue }
            #expect(try Self.foundation(out) == Self.foundation(Array(example.utf8)), "\(name) changed in a round trip")
            checked += 1
        }
        #expect(checked >= 40, "only \(checked) schemas have examples")
    }

    @Test func randomSignalsRoundTrip() throws {
        var rng = SplitMix(seed: 42)
        let alphabet = Array("aZ09 \"\\/\n\t\u{1}éعربي😀\u{2028}")
        func text(_ n: Int) -> String { String((0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }) }
        for _ in 0..<300 {
            let s = Signal(
                id: UUID(), source: text(8), sourceId: text(5), title: text(20), summary: text(40),
                sourceUrl: rng.next() % 2 == 0 ? nil : "https://example.org/" + String(rng.next() % 1000),
                category: SignalCategory.allCases[Int(rng.next() % 8)], severity: Severity.allCases[Int(rng.next() % 4)],
                confidence: Double(rng.next() % 10_001) / 10_000, modelVersion: text(4), tags: (0..<Int(rng.next() % 5)).map { _ in text(3) },
                region: rng.next() % 2 == 0 ? nil : text(6),
                publishedAt: Date(timeIntervalSince1970: Double(rng.next() % 2_000_000_000) + Double(rng.next() % 1_000_000) / 1e6),
                status: SignalStatus.allCases[Int(rng.next() % 4)], triageNote: nil, triagedBy: nil, triagedAt: nil,
                ingestedAt: Date(timeIntervalSince1970: Double(rng.next() % 2_000_000_000)), etag: "\"\(rng.next() % 100)\"")
            let bytes = s.jsonBytes()
            var errors = ValidationErrors()
            let back = Signal(json: try JSONParser.parse(bytes), at: "", errors: &errors)
            #expect(errors.isEmpty)
            #expect(back?.title == s.title && back?.summary == s.summary && back?.tags == s.tags && back?.id == s.id)
            #expect(back.map { abs($0.publishedAt.timeIntervalSince(s.publishedAt)) < 1e-6 } == true)
            let f = try Self.foundation(bytes) as! NSDictionary
            #expect(f["title"] as? String == s.title)
            #expect((f["confidence"] as? NSNumber)?.doubleValue == s.confidence)
        }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
