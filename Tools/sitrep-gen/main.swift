import Foundation
import GeneratorCore

// sitrep-gen: the contract's code generator, run by the SwiftPM plugin at build time.
//   sitrep-gen generate <spec.yaml> --output <dir>   load → check → model → render, write the Swift files
//   sitrep-gen check <spec.yaml>                     load → check only; prints every finding
//   sitrep-gen diff <old.yaml> <new.yaml>            what changed for clients; exit 1 on breaking
//                                                    changes without a major version bump

func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(code)
}

/// One line per finding (`BREAKING rule location: message` / `ok rule location: message`), then
/// the verdict on stderr; exits 1 when the verdict fails.
func diff(oldPath: String, newPath: String) -> Never {
    let old: LoadedSpec
    let new: LoadedSpec
    do {
        old = try Loader.load(file: oldPath)
    } catch let e as DiagnosticError {
        fail(e.diagnostics.map { $0.rendered(file: oldPath) }.joined(separator: "\n"))
    } catch {
        fail("\(oldPath):1: error: \(error)")
    }
    do {
        new = try Loader.load(file: newPath)
    } catch let e as DiagnosticError {
        fail(e.diagnostics.map { $0.rendered(file: newPath) }.joined(separator: "\n"))
    } catch {
        fail("\(newPath):1: error: \(error)")
    }
    let findings = ContractDiff.compare(old: old, new: new)
    for f in findings { print(f.description) }
    let verdict = ContractDiff.verdict(old: old, new: new, findings: findings)
    if !verdict.passes { fail("diff \(oldPath) → \(newPath): \(verdict.reason)") }
    FileHandle.standardError.write(Data("diff \(oldPath) → \(newPath): ok, \(verdict.reason)\n".utf8))
    exit(0)
}

let usage = "usage: sitrep-gen generate <spec.yaml> --output <dir> | sitrep-gen check <spec.yaml> | sitrep-gen diff <old.yaml> <new.yaml>"
let args = Array(CommandLine.arguments.dropFirst())
guard let command = args.first, args.count >= 2 else { fail(usage, code: 2) }
if command == "diff" {
    guard args.count == 3 else { fail(usage, code: 2) }
    diff(oldPath: args[1], newPath: args[2])
}
let specPath = args[1]

do {
    let spec = try Loader.load(file: specPath)
    let findings = Checker.check(spec)
    if !findings.isEmpty {
        fail(findings.map { $0.rendered(file: specPath) }.joined(separator: "\n"))
    }
    switch command {
    case "check":
        print("\(specPath): ok")
    case "generate":
        guard let i = args.firstIndex(of: "--output"), i + 1 < args.count else { fail("generate needs --output <dir>", code: 2) }
        let out = URL(fileURLWithPath: args[i + 1])
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let model = ModelBuilder.build(spec)
        for (name, text) in ServerRenderer.render(model, specText: spec.text).sorted(by: { $0.key < $1.key }) {
            let url = out.appendingPathComponent(name)
            let data = Data(text.utf8)
            if (try? Data(contentsOf: url)) != data { try data.write(to: url) }
        }
    default:
        fail("unknown command \(command)", code: 2)
    }
} catch let e as DiagnosticError {
    fail(e.diagnostics.map { $0.rendered(file: specPath) }.joined(separator: "\n"))
} catch {
    fail("\(specPath):1: error: \(error)")
}
