import Foundation

/// Indentation-aware text builder for generated Swift.
struct SwiftWriter {
    private(set) var text = ""
    private var level = 0

    mutating func line(_ s: String = "") {
        if s.isEmpty {
            text += "\n"
        } else {
            text += String(repeating: "    ", count: level) + s + "\n"
        }
    }

    mutating func open(_ s: String) {
        line(s + " {")
        level += 1
    }

    /// A line that opens a block without adding " {" (e.g. a trailing closure with parameters).
    mutating func openRaw(_ s: String) {
        line(s)
        level += 1
    }

    mutating func close(_ suffix: String = "") {
        level -= 1
        line("}" + suffix)
    }

    /// Lines written by `body` one level further in, without braces (a `case` of a `switch`).
    mutating func indent(_ body: (inout SwiftWriter) -> Void) {
        level += 1
        body(&self)
        level -= 1
    }

    mutating func doc(_ s: String?) {
        guard let s, !s.isEmpty else { return }
        for l in s.split(separator: "\n", omittingEmptySubsequences: false) {
            let t = l.trimmingCharacters(in: .whitespaces)
            line(t.isEmpty ? "///" : "/// " + t)
        }
    }
}
