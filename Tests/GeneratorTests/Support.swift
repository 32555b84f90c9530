import Dispatch
import Foundation

@testable import GeneratorCore

enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func text(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }

    static var mini: String { (try? text("mini.yaml")) ?? "" }

    /// Compares `actual` with a golden file; `UPDATE_GOLDENS=1` rewrites it instead.
    static func golden(_ name: String, _ actual: String) throws -> Bool {
        let url = directory.appendingPathComponent("golden").appendingPathComponent(name + ".golden")
        if ProcessInfo.processInfo.environment["UPDATE_GOLDENS"] == "1" {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(actual.utf8).write(to: url)
            return true
        }
        let expected = try String(contentsOf: url, encoding: .utf8)
        return expected == actual
    }
}

/// Runs load and check on a spec text; returns the findings as `path: message` strings.
func findings(_ text: String) -> [String] {
    do {
        let spec = try Loader.load(text: text)
        return Checker.check(spec).map(\.description)
    } catch let e as DiagnosticError {
        return e.diagnostics.map(\.description)
    } catch {
        return ["\(error)"]
    }
}

extension String {
    /// The spec with the first occurrence of an exact fragment replaced; fails loudly when the
    /// fragment is absent so a test can never pass by editing nothing.
    func replacing(_ old: String, with new: String) -> String {
        guard let r = self.range(of: old) else { preconditionFailure("fixture does not contain: \(old)") }
        return self.replacingCharacters(in: r, with: new)
    }
}

/// Runs blocking or CPU-heavy work (swiftc, loading the full contract in a debug build) on a
/// Dispatch thread rather than on Swift concurrency's small cooperative pool.
func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}
