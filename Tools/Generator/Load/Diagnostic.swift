/// A problem found in the spec, named by its path in the document (e.g.
/// `paths./v1/actions.post.responses.404`) and, when known, its line.
public struct Diagnostic: Error, Equatable, Sendable, CustomStringConvertible {
    public var path: String
    public var message: String
    public var line: Int?

    public init(path: String, message: String, line: Int? = nil) {
        self.path = path
        self.message = message
        self.line = line
    }

    /// `path: message`, the form the tests pin.
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }

    /// `file:line: error: path: message`, the form compilers and editors understand.
    public func rendered(file: String) -> String {
        "\(file):\(line ?? 1): error: \(description)"
    }
}

/// One or more diagnostics; the build fails with all of them.
public struct DiagnosticError: Error, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
