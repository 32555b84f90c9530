import Foundation
import Generated
import SitrepRuntime
import Testing

@testable import GeneratorCore

/// Property test: random values of every schema in the real contract (drawn from the spec's own
/// constraints via the generator's model) decode with the generated decoders, and encode back
/// to JSON that Foundation's JSONSerialization reads as the same value.
@Suite("random round trip of every schema")
struct RandomRoundTripTests {
    static let model: APIModel = {
        let spec = try! Loader.load(text: SitrepSpec.yaml)
        return ModelBuilder.build(spec)
    }()

    struct Gen {
        var rng: SplitMix
        let schemas: [String: SchemaDecl]
        static let alphabet = Array("aZ09 -_.\"\\/\n\té😀عربي\u{2028}")
        static let patternCandidates = [
            "+971501234567", String(repeating: "ab12", count: 16), "briefing.approve", "signal.triage.x", "/v1/briefings",
            "AED", "-1250000.75", "SM" + String(repeating: "0f", count: 16), "AC" + String(repeating: "a1", count: 16),
        ]

        mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(rng.next() % UInt64(range.count)) }
        mutating func chance(_ percent: Int) -> Bool { int(0...99) < percent }

        mutating func string(_ r: StringRuleIR) -> Any {
            switch r.format {
            case .uuid: return UUIDv7.make(at: Date(timeIntervalSince1970: Double(int(0...2_000_000_000)))).uuidString.lowercased()
            case .dateTime:
                let micros = chance(50) ? 0 : int(1...999_999)
                return WireFormat.formatDateTime(Date(timeIntervalSince1970: Double(int(0...2_000_000_000)) + Double(micros) / 1e6))
            case .date: return String(format: "%04d-%02d-%02d", int(1970...2100), int(1...12), int(1...28))
            case .email: return "user\(int(0...9999))@example.org"
            case .uri: return "https://example.org/items/\(int(0...9999))"
            case .none:
                if let p = r.pattern {
                    let pattern = Pattern(p)
                    return Self.patternCandidates.first { pattern.matches($0) } ?? "NO-CANDIDATE-FOR \(p)"
                }
                let lo = r.minLength ?? 0
                let hi = max(lo, min(r.maxLength ?? 12, lo + 12))
                return String((0..<int(lo...hi)).map { _ in Self.alphabet[int(0...(Self.alphabet.count - 1))] })
            }
        }

        mutating func value(_ t: TypeIR, depth: Int) -> Any {
            switch t {
            case .string(let r): return string(r)
            case .integer(let lo, let hi, _):
                let a = lo.map { Int($0.value) + ($0.exclusive ? 1 : 0) } ?? -1000
                let b = hi.map { Int($0.value) - ($0.exclusive ? 1 : 0) } ?? 1000
                return int(a...max(a, b))
            case .number(let lo, let hi):
                let a = lo?.value ?? -1e6
                let b = hi?.value ?? 1e6
                let v = a + (b - a) * Double(int(0...10_000)) / 10_000
                return (lo?.exclusive == true && v == a) || (hi?.exclusive == true && v == b) ? (a + b) / 2 : v
            case .boolean: return chance(50)
            case .array(let inner, let minItems, let maxItems):
                let lo = minItems ?? 0
                let n = int(lo...max(lo, min(maxItems ?? 3, lo + 3)))
                return (0..<n).map { _ in value(inner, depth: depth + 1) }
            case .named(let name, _):
                switch schemas[name] {
                case .enumeration(let e)?: return e.cases[int(0...(e.cases.count - 1))].value
                case .object(let o)?: return object(o, depth: depth + 1)
                case nil: return NSNull()
                }
            }
        }

        mutating func object(_ o: ObjectIR, depth: Int) -> [String: Any] {
            var out: [String: Any] = [:]
            for p in o.properties {
                if !p.required && (depth > 3 || chance(40)) { continue }
                if p.required && p.nullable && chance(25) {
                    out[p.jsonName] = NSNull()
                    continue
                }
                out[p.jsonName] = value(p.type, depth: depth)
            }
            return out
        }
    }

    @Test func everySchemaRoundTrips() throws {
        let model = Self.model
        let schemas = Dictionary(uniqueKeysWithValues: model.schemas.map { ($0.name, $0) })
        var gen = Gen(rng: SplitMix(seed: 7), schemas: schemas)
        var checked = 0
        for decl in model.schemas {
            for _ in 0..<25 {
                let value: Any
                switch decl {
                case .object(let o): value = gen.object(o, depth: 0)
                case .enumeration: value = gen.value(.named(decl.name, isEnum: true), depth: 0)
                }
                let input = try JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed])
                var errors = ValidationErrors()
                let out = SitrepSchemas.roundTrip(decl.name, try JSONParser.parse(Array(input)), errors: &errors)
                guard let out else {
                    Issue.record(
                        "\(decl.name): a value within its constraints was refused: \(errors.items) in \(String(decoding: input, as: UTF8.self))")
                    break
                }
                let a = try JSONSerialization.jsonObject(with: input, options: [.fragmentsAllowed]) as! NSObject
                let b = try JSONSerialization.jsonObject(with: Data(out), options: [.fragmentsAllowed]) as! NSObject
                #expect(
                    a == b,
                    "\(decl.name) changed in a round trip:\n\(String(decoding: input, as: UTF8.self))\n\(String(decoding: out, as: UTF8.self))")
                checked += 1
            }
        }
        #expect(checked == model.schemas.count * 25)
    }
}
