import Foundation
import OpenAPIKit
import Yams

/// The first stage: YAML text → an OpenAPIKit document, plus a map from spec paths to lines so
/// later stages can point at the right place.
public struct LoadedSpec: Sendable {
    public let file: String
    public let text: String
    public let document: OpenAPI.Document
    public let lines: SourceMap
}

public enum Loader {
    public static func load(file: String) throws -> LoadedSpec {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw DiagnosticError([Diagnostic(path: "", message: "cannot read \(file): \(error.localizedDescription)")])
        }
        return try load(text: text, file: file)
    }

    public static func load(text: String, file: String = "openapi.yaml") throws -> LoadedSpec {
        let node: Yams.Node
        do {
            guard let n = try Yams.compose(yaml: text) else {
                throw DiagnosticError([Diagnostic(path: "", message: "the spec is empty")])
            }
            node = n
        } catch let e as DiagnosticError {
            throw e
        } catch {
            throw DiagnosticError([Diagnostic(path: "", message: "not valid YAML: \(error)")])
        }
        let lines = SourceMap(root: node)
        if case .mapping(let m) = node, let v = m["openapi"]?.string, !v.hasPrefix("3.1") {
            throw DiagnosticError([
                Diagnostic(path: "openapi", message: "only OpenAPI 3.1 is supported (found \(v))", line: lines.line(for: ["openapi"]))
            ])
        }
        do {
            let document = try YAMLDecoder().decode(OpenAPI.Document.self, from: text)
            return LoadedSpec(file: file, text: text, document: document, lines: lines)
        } catch {
            let e = OpenAPI.Error(from: error)
            let path = e.codingPath.map(\.stringValue)
            throw DiagnosticError([
                Diagnostic(path: path.joined(separator: "."), message: e.localizedDescription, line: lines.line(for: path))
            ])
        }
    }
}

/// Finds the line of a spec path in the YAML source.
public struct SourceMap: @unchecked Sendable {
    // Yams.Node is an immutable value tree once composed; it is only read after init.
    private let root: Yams.Node

    init(root: Yams.Node) { self.root = root }

    /// The line of the deepest node along `path` that exists (1-based).
    public func line(for path: [String]) -> Int? {
        var node = root
        var line = root.mark?.line
        for key in path {
            switch node {
            case .mapping(let m):
                guard let pair = m.first(where: { $0.key.string == key }) else { return line }
                line = pair.key.mark?.line ?? line
                node = pair.value
            case .sequence(let s):
                guard let i = Int(key), i < s.count else { return line }
                node = s[i]
                line = node.mark?.line ?? line
            default:
                return line
            }
        }
        return line
    }
}
