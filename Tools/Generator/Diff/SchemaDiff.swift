import Foundation
import OpenAPIKit

/// A schema with its `$ref`s followed and a nullable wrapper (`oneOf: [X, {type: 'null'}]`,
/// `type: [X, 'null']`) unwrapped.
struct ResolvedSchema {
    let schema: JSONSchema
    let nullable: Bool
    /// The last component the references led to, if any.
    let component: String?

    init(_ start: JSONSchema, in spec: SpecAccess) {
        var s = start
        var nullable = false
        var component: String?
        for _ in 0..<32 {  // a chain of aliases; a ref loop without content stops here
            nullable = nullable || s.nullable
            if let ref = s.reference, let name = SpecAccess.refName(ref), let target = spec.schema(named: name) {
                component = name
                s = target
                continue
            }
            let options: [JSONSchema]
            switch s.value {
            case .one(of: let o, _), .any(of: let o, _): options = o
            default: options = []
            }
            let nonNull = options.filter { !$0.isNull }
            if nonNull.count == 1 && options.count == 2 {
                nullable = true
                s = nonNull[0]
                continue
            }
            break
        }
        self.schema = s
        self.nullable = nullable
        self.component = component
    }

    /// The JSON type (or combinator) for type-change checks.
    var kind: String {
        if case .reference(let ref, _) = schema.value { return "$ref \(ref.absoluteString)" }
        return schema.kindName
    }

    var format: String? {
        guard let f = schema.formatString, !f.isEmpty else { return nil }
        return f
    }

    var enumValues: [String]? {
        schema.allowedValues.map { $0.map { "\($0.value)" } }
    }
}

extension DiffRun {
    /// Compares two schemas at `at`. Rules: `type-changed`, `response-property-nullable`,
    /// `description-changed`, and those of the per-kind functions below.
    func compareSchema(_ oldSchema: JSONSchema, _ newSchema: JSONSchema, at: String, direction: Direction) {
        let o = ResolvedSchema(oldSchema, in: old)
        let n = ResolvedSchema(newSchema, in: new)
        compareNullability(o, n, at: at, direction: direction)
        var at = at
        if o.component != nil || n.component != nil {
            // Per release state too: a component seen under a planned operation is compared
            // again (and can break) when a released operation reaches it.
            let key = "\(unreleased)|\(direction.rawValue)|\(o.component ?? "")|\(n.component ?? "")"
            guard visited.insert(key).inserted else { return }
            if let name = n.component, o.component != nil { at = "components.schemas.\(name)" }
        }
        guard o.kind == n.kind else {
            report("type-changed", at, "\(direction.rawValue) type changed from \(o.kind) to \(n.kind)", breaking: true)
            return
        }
        if o.schema.description != n.schema.description {
            report("description-changed", at, "the schema's description changed", breaking: false)
        }
        compareFormat(o, n, at: at, direction: direction)
        compareEnum(o, n, at: at, direction: direction)
        switch (o.schema.value, n.schema.value) {
        case (.string(_, let oc), .string(_, let nc)):
            compareStringConstraints(oc, nc, at: at, direction: direction)
        case (.integer(_, let oc), .integer(_, let nc)):
            compareBounds(
                old: (oc.minimum.map { (Double($0.value), $0.exclusive) }, oc.maximum.map { (Double($0.value), $0.exclusive) }),
                new: (nc.minimum.map { (Double($0.value), $0.exclusive) }, nc.maximum.map { (Double($0.value), $0.exclusive) }),
                at: at, direction: direction)
        case (.number(_, let oc), .number(_, let nc)):
            compareBounds(
                old: (oc.minimum.map { ($0.value, $0.exclusive) }, oc.maximum.map { ($0.value, $0.exclusive) }),
                new: (nc.minimum.map { ($0.value, $0.exclusive) }, nc.maximum.map { ($0.value, $0.exclusive) }),
                at: at, direction: direction)
        case (.array(_, let oc), .array(_, let nc)):
            compareArrays(oc, nc, at: at, direction: direction)
        case (.object(_, let oc), .object(_, let nc)):
            compareObjects(oc, nc, at: at, direction: direction)
        case (.all(let oo, _), .all(let no, _)), (.one(let oo, _), .one(let no, _)), (.any(let oo, _), .any(let no, _)):
            compareAlternatives(oo, no, kind: n.kind, at: at, direction: direction)
        default:
            break
        }
    }

    // MARK: nullability

    /// Response: `response-property-nullable` (breaking: clients get a null they never handled).
    /// Request: no longer accepting null is `request-constraint-narrowed`; accepting it is widened.
    private func compareNullability(_ o: ResolvedSchema, _ n: ResolvedSchema, at: String, direction: Direction) {
        guard o.nullable != n.nullable else { return }
        switch direction {
        case .response where n.nullable:
            report("response-property-nullable", at, "the response value can now be null", breaking: true)
        case .response:
            break
        case .request where o.nullable:
            report("request-constraint-narrowed", at, "null is no longer accepted", breaking: true)
        case .request:
            report("request-constraint-widened", at, "null is now accepted", breaking: false)
        }
    }

    // MARK: format and enums

    /// Request: a format added or changed narrows; removed widens. Response: a format changed is
    /// `type-changed` (clients parse it as the old format); added or removed is no change for them.
    private func compareFormat(_ o: ResolvedSchema, _ n: ResolvedSchema, at: String, direction: Direction) {
        guard o.format != n.format else { return }
        let from = o.format ?? "none"
        let to = n.format ?? "none"
        switch direction {
        case .request:
            if n.format != nil {
                report("request-constraint-narrowed", at, "format \(o.format == nil ? "added" : "changed"): \(from) → \(to)", breaking: true)
            } else {
                report("request-constraint-widened", at, "format removed: \(from) → none", breaking: false)
            }
        case .response:
            if o.format != nil && n.format != nil {
                report("type-changed", at, "response format changed from \(from) to \(to)", breaking: true)
            }
        }
    }

    /// Request: `request-enum-value-removed` (breaking), `request-enum-value-added`, and an enum
    /// newly imposed is `request-constraint-narrowed`. Response: `response-enum-value-added`
    /// (breaking: exhaustive switches in clients miss the new case), `response-enum-value-removed`.
    private func compareEnum(_ o: ResolvedSchema, _ n: ResolvedSchema, at: String, direction: Direction) {
        let ov = o.enumValues
        let nv = n.enumValues
        guard ov != nv else { return }
        let removed = (ov ?? []).filter { !(nv ?? []).contains($0) }
        let added = (nv ?? []).filter { !(ov ?? []).contains($0) }
        switch direction {
        case .request:
            if ov == nil {
                report("request-constraint-narrowed", at, "values are now restricted to [\(added.joined(separator: ", "))]", breaking: true)
                return
            }
            if !removed.isEmpty && nv != nil {
                report(
                    "request-enum-value-removed", at, "no longer accepted: \(removed.joined(separator: ", "))", breaking: true)
            }
            if !added.isEmpty || nv == nil {
                let what = nv == nil ? "the enum was lifted" : "now accepted: \(added.joined(separator: ", "))"
                report("request-enum-value-added", at, what, breaking: false)
            }
        case .response:
            if nv == nil {
                report(
                    "response-enum-value-added", at,
                    "the response enum was lifted: any value may come back, clients with exhaustive switches break", breaking: true)
                return
            }
            if !added.isEmpty && ov != nil {
                report(
                    "response-enum-value-added", at,
                    "new response value(s) \(added.joined(separator: ", ")): clients with exhaustive switches break", breaking: true)
            }
            if !removed.isEmpty || ov == nil {
                report("response-enum-value-removed", at, "no longer returned: \(removed.joined(separator: ", "))", breaking: false)
            }
        }
    }

    // MARK: constraints (request side narrows = breaking, widens = ok; response side not checked)

    private func constraint(_ narrowed: Bool, at: String, _ message: String, direction: Direction) {
        guard direction == .request else { return }
        if narrowed {
            report("request-constraint-narrowed", at, message, breaking: true)
        } else {
            report("request-constraint-widened", at, message, breaking: false)
        }
    }

    /// An upper bound (`maxLength`, `maxItems`): lowered or added narrows.
    private func compareUpper(_ name: String, _ o: Int?, _ n: Int?, at: String, direction: Direction) {
        guard o != n else { return }
        let narrowed = n != nil && (o == nil || n! < o!)
        constraint(narrowed, at: at, "\(name) \(o.map(String.init) ?? "none") → \(n.map(String.init) ?? "none")", direction: direction)
    }

    /// A lower bound (`minLength`, `minItems`; 0 when absent): raised narrows.
    private func compareLower(_ name: String, _ o: Int, _ n: Int, at: String, direction: Direction) {
        guard o != n else { return }
        constraint(n > o, at: at, "\(name) \(o) → \(n)", direction: direction)
    }

    private func compareStringConstraints(
        _ o: JSONSchema.StringContext, _ n: JSONSchema.StringContext, at: String, direction: Direction
    ) {
        compareUpper("maxLength", o.maxLength, n.maxLength, at: at, direction: direction)
        compareLower("minLength", o.minLength, n.minLength, at: at, direction: direction)
        if o.pattern != n.pattern {
            let what = o.pattern == nil ? "pattern added" : n.pattern == nil ? "pattern removed" : "pattern changed"
            constraint(n.pattern != nil, at: at, "\(what): \(o.pattern ?? "none") → \(n.pattern ?? "none")", direction: direction)
        }
    }

    typealias Bound = (value: Double, exclusive: Bool)

    /// `minimum`/`maximum` (with `exclusiveMinimum`/`exclusiveMaximum`): a tighter bound narrows.
    private func compareBounds(
        old: (min: Bound?, max: Bound?), new: (min: Bound?, max: Bound?), at: String, direction: Direction
    ) {
        func text(_ b: Bound?) -> String {
            guard let b else { return "none" }
            let v = b.value == b.value.rounded() ? String(Int(b.value)) : String(b.value)
            return b.exclusive ? "\(v) (exclusive)" : v
        }
        // Whether `n` admits fewer values than `o` on the side where a larger value is tighter.
        func tighter(_ o: Bound?, _ n: Bound?, largerIsTighter: Bool) -> Bool {
            guard let n else { return false }
            guard let o else { return true }
            if n.value != o.value { return largerIsTighter ? n.value > o.value : n.value < o.value }
            return n.exclusive && !o.exclusive
        }
        if old.min?.value != new.min?.value || old.min?.exclusive != new.min?.exclusive {
            constraint(
                tighter(old.min, new.min, largerIsTighter: true), at: at, "minimum \(text(old.min)) → \(text(new.min))", direction: direction)
        }
        if old.max?.value != new.max?.value || old.max?.exclusive != new.max?.exclusive {
            constraint(
                tighter(old.max, new.max, largerIsTighter: false), at: at, "maximum \(text(old.max)) → \(text(new.max))",
                direction: direction)
        }
    }

    // MARK: arrays

    private func compareArrays(_ o: JSONSchema.ArrayContext, _ n: JSONSchema.ArrayContext, at: String, direction: Direction) {
        compareUpper("maxItems", o.maxItems, n.maxItems, at: at, direction: direction)
        compareLower("minItems", o.minItems, n.minItems, at: at, direction: direction)
        if let oi = o.items, let ni = n.items {
            compareSchema(oi, ni, at: at + ".items", direction: direction)
        }
    }

    // MARK: objects

    /// Response: `response-property-removed`, `response-property-optional` (breaking),
    /// `response-property-added`. Request: `request-property-added-required`,
    /// `request-property-made-required` (breaking), `request-property-added`,
    /// `request-property-removed` (breaking only when the new object refuses unknown properties).
    private func compareObjects(_ o: JSONSchema.ObjectContext, _ n: JSONSchema.ObjectContext, at: String, direction: Direction) {
        let oldRequired = Set(o.requiredProperties)
        let newRequired = Set(n.requiredProperties)
        let closed: Bool
        if case .a(false) = n.additionalProperties { closed = true } else { closed = false }
        for (name, os) in o.properties {
            let loc = "\(at).properties.\(name)"
            guard let ns = n.properties[name] else {
                switch direction {
                case .response:
                    report("response-property-removed", loc, "response property '\(name)' was removed", breaking: true)
                case .request:
                    let why = closed ? ": clients still sending it are refused (additionalProperties: false)" : ""
                    report("request-property-removed", loc, "request property '\(name)' was removed\(why)", breaking: closed)
                }
                continue
            }
            switch direction {
            case .response where oldRequired.contains(name) && !newRequired.contains(name):
                report("response-property-optional", loc, "response property '\(name)' is no longer required", breaking: true)
            case .request where newRequired.contains(name) && !oldRequired.contains(name):
                report("request-property-made-required", loc, "request property '\(name)' is now required", breaking: true)
            default:
                break
            }
            compareSchema(os, ns, at: loc, direction: direction)
        }
        for name in n.properties.keys where o.properties[name] == nil {
            let loc = "\(at).properties.\(name)"
            switch direction {
            case .response:
                report("response-property-added", loc, "new response property '\(name)'", breaking: false)
            case .request where newRequired.contains(name):
                report("request-property-added-required", loc, "new required request property '\(name)'", breaking: true)
            case .request:
                report("request-property-added", loc, "new optional request property '\(name)'", breaking: false)
            }
        }
        if direction == .request, case .a(false) = n.additionalProperties, !Self.isClosed(o) {
            report("request-constraint-narrowed", at, "additional properties are no longer accepted", breaking: true)
        }
    }

    private static func isClosed(_ o: JSONSchema.ObjectContext) -> Bool {
        if case .a(false) = o.additionalProperties { return true }
        return false
    }

    // MARK: combinators

    /// `allOf`/`oneOf`/`anyOf` compared position by position. A changed number of alternatives:
    /// request side fewer = narrowed, more = widened; response side more =
    /// `response-alternative-added` (breaking), fewer = no change for clients.
    private func compareAlternatives(_ o: [JSONSchema], _ n: [JSONSchema], kind: String, at: String, direction: Direction) {
        for (i, (os, ns)) in zip(o, n).enumerated() {
            compareSchema(os, ns, at: "\(at).\(kind).\(i)", direction: direction)
        }
        guard o.count != n.count else { return }
        switch (kind, direction) {
        case ("allOf", _):  // more members constrain more
            constraint(n.count > o.count, at: at, "allOf members \(o.count) → \(n.count)", direction: direction)
        case (_, .request):
            constraint(n.count < o.count, at: at, "\(kind) alternatives \(o.count) → \(n.count)", direction: direction)
        case (_, .response) where n.count > o.count:
            report(
                "response-alternative-added", at, "\(kind) alternatives \(o.count) → \(n.count): clients may receive a shape they do not know",
                breaking: true)
        default:
            break
        }
    }
}
