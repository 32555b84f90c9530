/// How one IR type maps to Swift: its type name, its decoder expression, its encoder statements.
enum TypeRendering {
    static func swiftType(_ t: TypeIR) -> String {
        switch t {
        case .string(let r):
            switch r.format {
            case .uuid: "UUID"
            case .dateTime: "Date"
            case .date: "CalendarDate"
            default: "String"
            }
        case .integer: "Int"
        case .number: "Double"
        case .boolean: "Bool"
        case .named(let n, _): n
        case .array(let inner, _, _): "[\(swiftType(inner))]"
        }
    }

    /// Rule constants a type needs, collected as `static let` declarations.
    struct Rules {
        var decls: [String] = []
        mutating func add(_ name: String, _ expr: String) -> String {
            decls.append("static let \(name) = \(expr)")
            return "Self.\(name)"
        }
    }

    static func stringRule(_ r: StringRuleIR) -> String? {
        var args: [String] = []
        if let v = r.minLength { args.append("minLength: \(v)") }
        if let v = r.maxLength { args.append("maxLength: \(v)") }
        if let p = r.pattern { args.append("pattern: Pattern(\(SwiftLiteral.string(p)))") }
        switch r.format {
        case .email: args.append("format: .email")
        case .uri: args.append("format: .uri")
        default: break
        }
        return args.isEmpty ? nil : "StringRule(\(args.joined(separator: ", ")))"
    }

    static func bound(_ b: NumberBoundIR?, _ name: String, integer: Bool) -> [String] {
        guard let b else { return [] }
        let v = integer ? String(Int(b.value)) : String(b.value)
        var out = ["\(name): \(v)"]
        if b.exclusive { out.append("exclusive\(name.prefix(1).uppercased() + name.dropFirst()): true") }
        return out
    }

    static func integerRule(min: NumberBoundIR?, max: NumberBoundIR?, int32: Bool) -> String? {
        var lo = min
        var hi = max
        if int32 {
            lo = lo ?? NumberBoundIR(value: Double(Int32.min), exclusive: false)
            hi = hi ?? NumberBoundIR(value: Double(Int32.max), exclusive: false)
        }
        let args = bound(lo, "minimum", integer: true) + bound(hi, "maximum", integer: true)
        return args.isEmpty ? nil : "IntegerRule(\(args.joined(separator: ", ")))"
    }

    static func numberRule(min: NumberBoundIR?, max: NumberBoundIR?) -> String? {
        let args = bound(min, "minimum", integer: false) + bound(max, "maximum", integer: false)
        return args.isEmpty ? nil : "NumberRule(\(args.joined(separator: ", ")))"
    }

    /// A `Field<T>` expression decoding JSON value `v` (a `JSONValue?`) at pointer `p`.
    static func jsonDecode(_ t: TypeIR, v: String, p: String, ruleBase: String, rules: inout Rules) -> String {
        switch t {
        case .string(let r):
            switch r.format {
            case .uuid: return "JSONDecoding.uuid(\(v), at: \(p), errors: &errors)"
            case .dateTime: return "JSONDecoding.dateTime(\(v), at: \(p), errors: &errors)"
            case .date: return "JSONDecoding.date(\(v), at: \(p), errors: &errors)"
            default:
                if let rule = stringRule(r) {
                    let ref = rules.add(ruleBase, rule)
                    return "JSONDecoding.string(\(v), at: \(p), rule: \(ref), errors: &errors)"
                }
                return "JSONDecoding.string(\(v), at: \(p), errors: &errors)"
            }
        case .integer(let lo, let hi, let int32):
            if let rule = integerRule(min: lo, max: hi, int32: int32) {
                return "JSONDecoding.integer(\(v), at: \(p), rule: \(rule), errors: &errors)"
            }
            return "JSONDecoding.integer(\(v), at: \(p), errors: &errors)"
        case .number(let lo, let hi):
            if let rule = numberRule(min: lo, max: hi) {
                return "JSONDecoding.number(\(v), at: \(p), rule: \(rule), errors: &errors)"
            }
            return "JSONDecoding.number(\(v), at: \(p), errors: &errors)"
        case .boolean:
            return "JSONDecoding.bool(\(v), at: \(p), errors: &errors)"
        case .named(let n, _):
            return "JSONDecoding.object(\(n).self, \(v), at: \(p), errors: &errors)"
        case .array(let inner, let minItems, let maxItems):
            var args: [String] = []
            if let m = minItems { args.append("minItems: \(m)") }
            if let m = maxItems { args.append("maxItems: \(m)") }
            let rule = args.isEmpty ? "" : " rule: ArrayRule(\(args.joined(separator: ", "))),"
            let elem = jsonDecode(inner, v: "v", p: "p", ruleBase: ruleBase + "Items", rules: &rules)
            return "JSONDecoding.array(\(v), at: \(p),\(rule) errors: &errors) { v, p, errors in \(elem) }"
        }
    }

    /// A `Field<T>` expression decoding a parameter's raw string `raw` (a `Substring?`).
    static func paramDecode(_ t: TypeIR, raw: String, p: String, ruleBase: String, rules: inout Rules) -> String {
        switch t {
        case .string(let r):
            switch r.format {
            case .uuid: return "ParamDecoding.uuid(\(raw), at: \(p), errors: &errors)"
            case .dateTime: return "ParamDecoding.dateTime(\(raw), at: \(p), errors: &errors)"
            case .date: return "ParamDecoding.date(\(raw), at: \(p), errors: &errors)"
            default:
                if let rule = stringRule(r) {
                    let ref = rules.add(ruleBase, rule)
                    return "ParamDecoding.string(\(raw), at: \(p), rule: \(ref), errors: &errors)"
                }
                return "ParamDecoding.string(\(raw), at: \(p), errors: &errors)"
            }
        case .integer(let lo, let hi, let int32):
            if let rule = integerRule(min: lo, max: hi, int32: int32) {
                return "ParamDecoding.integer(\(raw), at: \(p), rule: \(rule), errors: &errors)"
            }
            return "ParamDecoding.integer(\(raw), at: \(p), errors: &errors)"
        case .number(let lo, let hi):
            if let rule = numberRule(min: lo, max: hi) {
                return "ParamDecoding.number(\(raw), at: \(p), rule: \(rule), errors: &errors)"
            }
            return "ParamDecoding.number(\(raw), at: \(p), errors: &errors)"
        case .boolean:
            return "ParamDecoding.bool(\(raw), at: \(p), errors: &errors)"
        case .named(let n, _):
            return "ParamDecoding.enumeration(\(n).self, \(raw), at: \(p), errors: &errors)"
        case .array(let inner, _, let maxItems):
            let rule = maxItems.map { " rule: ArrayRule(maxItems: \($0))," } ?? ""
            let elem = paramDecode(inner, raw: "r", p: "p", ruleBase: ruleBase + "Items", rules: &rules)
            return "ParamDecoding.array(\(raw), at: \(p),\(rule) errors: &errors) { r, p, errors in \(elem) }"
        }
    }

    /// Statements writing value expression `x` to writer `w`.
    static func encode(_ t: TypeIR, _ x: String, depth: Int = 0) -> [String] {
        switch t {
        case .string(let r):
            switch r.format {
            case .uuid: return ["w.uuid(\(x))"]
            case .dateTime: return ["w.dateTime(\(x))"]
            case .date: return ["w.date(\(x))"]
            default: return ["w.string(\(x))"]
            }
        case .integer: return ["w.int(\(x))"]
        case .number: return ["w.double(\(x))"]
        case .boolean: return ["w.bool(\(x))"]
        case .named: return ["\(x).encodeJSON(to: &w)"]
        case .array(let inner, _, _):
            let i = "i\(depth)"
            let e = "e\(depth)"
            var out = ["w.raw(\"[\")", "for (\(i), \(e)) in \(x).enumerated() {", "    if \(i) > 0 { w.raw(\",\") }"]
            out += encode(inner, e, depth: depth + 1).map { "    " + $0 }
            out += ["}", "w.raw(\"]\")"]
            return out
        }
    }
}
