/// Renders the contract as one self-contained HTML reference page, served at `/docs`: no
/// scripts, no fonts or assets from a CDN, readable offline and on a phone.
public enum DocsRenderer {
    public static func render(_ model: APIModel) -> String {
        var h = ""
        h += "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        h += "<title>\(esc(model.title)) \(esc(model.version)) — API reference</title>\n<style>\(css)</style></head><body>\n"
        h += "<nav><h1>\(esc(model.title)) <small>\(esc(model.version))</small></h1><p><a href=\"/openapi.yaml\">openapi.yaml</a></p>"
        for tag in model.tags {
            h += "<h3>\(esc(tag.name))</h3><ul>"
            for op in model.operations where op.tag == tag.name {
                h +=
                    "<li><a href=\"#\(op.operationId)\"><span class=\"m \(op.method.lowercased())\">\(op.method)</span> \(esc(op.path))</a>"
                    + (op.planned ? " <em>planned</em>" : "") + "</li>"
            }
            h += "</ul>"
        }
        h += "<h3>Schemas</h3><ul>"
        for s in model.schemas { h += "<li><a href=\"#schema-\(s.name)\">\(s.name)</a></li>" }
        h += "</ul></nav>\n<main>"
        if let d = model.description { h += "<section class=\"intro md\">\(Markdown.html(d))</section>" }
        for tag in model.tags {
            h += "<h2 id=\"tag-\(esc(tag.name))\">\(esc(tag.name))</h2>"
            if let d = tag.description { h += "<div class=\"md\">\(Markdown.html(d))</div>" }
            for op in model.operations where op.tag == tag.name { h += operation(op) }
        }
        h += "<h2>Schemas</h2>"
        for s in model.schemas { h += schema(s) }
        h += "</main></body></html>\n"
        return h
    }

    static func operation(_ op: OperationModel) -> String {
        var h =
            "<article id=\"\(op.operationId)\"><h3><span class=\"m \(op.method.lowercased())\">\(op.method)</span> <code>\(esc(op.path))</code></h3>"
        h += "<p class=\"sum\">\(esc(op.summary ?? "")) <code class=\"id\">\(op.operationId)</code></p><ul class=\"tags\">"
        if op.planned { h += "<li class=\"planned\">planned: answers 501</li>" }
        h += op.security.isEmpty ? "<li>public</li>" : "<li>auth: \(esc(op.security.joined(separator: " or ")))</li>"
        if !op.roles.isEmpty { h += "<li>roles: \(esc(op.roles.joined(separator: ", ")))</li>" }
        if op.mfa { h += "<li>MFA step-up</li>" }
        if op.idempotency { h += "<li>Idempotency-Key</li>" }
        if let r = op.rateLimit { h += "<li>rate limit: \(esc(r))</li>" }
        h += "</ul>"
        if let d = op.description { h += "<div class=\"md\">\(Markdown.html(d))</div>" }
        if !op.parameters.isEmpty {
            h += "<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>"
            for p in op.parameters {
                h +=
                    "<tr><td><code>\(esc(p.name))</code></td><td>\(p.location.rawValue)</td><td>\(type(p.type))</td><td>"
                    + (p.required ? "required" : p.defaultValue.map { "default \(esc($0))" } ?? "optional")
                    + (p.description.map { "<br>" + Markdown.inline($0) } ?? "") + "</td></tr>"
            }
            h += "</table>"
        }
        if let b = op.requestBody {
            h += "<p>Body (\(esc(b.contentTypes.joined(separator: ", ")))): " + (b.type.map(type) ?? "bytes") + "</p>"
        }
        h += "<table><tr><th>status</th><th>body</th><th>headers</th><th></th></tr>"
        for r in op.responses {
            let body: String
            switch r.body {
            case .json(let t): body = type(t)
            case .problem: body = "<a href=\"#schema-Problem\">Problem</a>"
            case .raw(let ct): body = esc(ct)
            case .eventStream: body = "text/event-stream"
            case .none: body = "—"
            }
            h +=
                "<tr><td>\(r.status)</td><td>\(body)</td><td>\(esc(r.headers.map(\.name).joined(separator: ", ")))</td><td>\(Markdown.inline(r.description ?? ""))</td></tr>"
        }
        h += "</table></article>"
        return h
    }

    static func schema(_ s: SchemaDecl) -> String {
        switch s {
        case .enumeration(let e):
            return "<article id=\"schema-\(e.name)\"><h3>\(e.name) <small>enum</small></h3>"
                + (e.description.map { "<p>\(Markdown.inline($0))</p>" } ?? "")
                + "<p>" + e.cases.map { "<code>\(esc($0.value))</code>" }.joined(separator: " · ") + "</p></article>"
        case .object(let o):
            var h = "<article id=\"schema-\(o.name)\"><h3>\(o.name)</h3>" + (o.description.map { "<p>\(Markdown.inline($0))</p>" } ?? "")
            h += "<table><tr><th>property</th><th>type</th><th></th></tr>"
            for p in o.properties {
                let flags = [p.required ? "required" : "optional", p.nullable ? "nullable" : nil].compactMap { $0 }.joined(separator: ", ")
                h +=
                    "<tr><td><code>\(p.jsonName)</code></td><td>\(type(p.type))</td><td>\(flags)"
                    + (p.description.map { "<br>" + Markdown.inline($0) } ?? "") + "</td></tr>"
            }
            if o.closed { h += "<tr><td colspan=\"3\"><em>no other properties allowed</em></td></tr>" }
            return h + "</table></article>"
        }
    }

    static func type(_ t: TypeIR) -> String {
        switch t {
        case .string(let r):
            var s = r.format == .none ? "string" : "string (\(r.format == .dateTime ? "date-time" : r.format.rawValue))"
            if let a = r.minLength { s += ", ≥\(a) chars" }
            if let b = r.maxLength { s += ", ≤\(b) chars" }
            if let p = r.pattern { s += ", pattern <code>\(esc(p))</code>" }
            return s
        case .integer(let lo, let hi, _): return "integer" + bounds(lo, hi)
        case .number(let lo, let hi): return "number" + bounds(lo, hi)
        case .boolean: return "boolean"
        case .named(let n, _): return "<a href=\"#schema-\(n)\">\(n)</a>"
        case .array(let inner, let a, let b):
            var s = "array of " + type(inner)
            if let a { s += ", ≥\(a) items" }
            if let b { s += ", ≤\(b) items" }
            return s
        }
    }

    static func bounds(_ lo: NumberBoundIR?, _ hi: NumberBoundIR?) -> String {
        func f(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(v) }
        var s = ""
        if let lo { s += lo.exclusive ? ", >\(f(lo.value))" : ", ≥\(f(lo.value))" }
        if let hi { s += hi.exclusive ? ", <\(f(hi.value))" : ", ≤\(f(hi.value))" }
        return s
    }

    static func esc(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(c)
            }
        }
        return out
    }

    static let css = """
        body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24;display:flex}
        nav{width:300px;flex:none;height:100vh;overflow:auto;position:sticky;top:0;background:#f4f6f8;padding:12px 16px;box-sizing:border-box;font-size:13px}
        nav ul{list-style:none;padding:0;margin:0 0 8px}nav li{margin:2px 0}nav a{color:#1b1f24;text-decoration:none}
        main{padding:16px 32px;max-width:1000px;min-width:0}h1 small,h3 small{color:#667;font-weight:normal}
        article{border-top:1px solid #dde;padding:12px 0}code{font:13px ui-monospace,monospace;background:#f0f2f4;padding:1px 4px;border-radius:3px}
        .m{display:inline-block;min-width:52px;text-align:center;font:bold 11px ui-monospace,monospace;color:#fff;border-radius:3px;padding:2px 4px}
        .get{background:#2f7d32}.post{background:#1565c0}.put{background:#8e5a00}.patch{background:#6a3fa0}.delete{background:#b3261e}
        .tags{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:6px}.tags li{background:#eef1f5;border-radius:10px;padding:0 8px;font-size:12px}
        .tags .planned{background:#fde7c8}em{color:#a25b00}.md p{margin:6px 0}.md ul{margin:4px 0 4px 20px;padding:0}
        table{border-collapse:collapse;width:100%;margin:8px 0;font-size:13px}td,th{border:1px solid #dde;padding:4px 6px;text-align:left;vertical-align:top}
        th{background:#f4f6f8}.id{color:#667}@media(max-width:800px){body{display:block}nav{width:auto;height:auto;position:static}}
        """
}
