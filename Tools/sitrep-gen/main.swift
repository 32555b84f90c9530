import Foundation
import GeneratorCore

// sitrep-gen: the contract's code generator, run by the SwiftPM plugin at build time.
//   sitrep-gen generate <spec.yaml> --output <dir>   load → check → model → render, write the Swift files
//   sitrep-gen check [--client] <spec.yaml>          load → check only; prints every finding. A spec
//                                                    whose info has x-client-name (api/erp.yaml) is
//                                                    checked as a client contract; --client forces it
//   sitrep-gen client <spec.yaml> --output <dir> [--name <Client>]
//                                                    a client contract → the typed client's Swift files
//                                                    (name: --name, else info.x-client-name)
//   sitrep-gen diff <old.yaml> <new.yaml>            what changed for clients; exit 1 on breaking
//                                                    changes without a major version bump

func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(code)
}

let usage = """
    usage: sitrep-gen generate <spec.yaml> --output <dir> | sitrep-gen check [--client] <spec.yaml> | \
    sitrep-gen client <spec.yaml> --output <dir> [--name <Client>] | sitrep-gen diff <old.yaml> <new.yaml>
    """
let args = Array(CommandLine.arguments.dropFirst())
guard let command = args.first, args.count >= 2 else { fail(usage, code: 2) }
if command == "diff" {
    guard args.count == 3 else { fail(usage, code: 2) }
    exit(ContractDiff.runCommand(oldPath: args[1], newPath: args[2]))
}

/// The value after `flag`, if given.
func option(_ flag: String) -> String? {
    guard let i = args.firstIndex(of: flag) else { return nil }
    guard i + 1 < args.count else { fail("\(flag) needs a value", code: 2) }
    return args[i + 1]
}

/// The first argument after the command that is neither a flag nor a flag's value.
let specPath: String = {
    var i = 1
    while i < args.count {
        switch args[i] {
        case "--output", "--name": i += 2
        case "--client": i += 1
        default: return args[i]
        }
    }
    fail(usage, code: 2)
}()

/// Writes `files` into `directory`, leaving unchanged files untouched (so SwiftPM sees no change).
func write(_ files: [String: String], to directory: String) throws {
    let out = URL(fileURLWithPath: directory)
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    for (name, text) in files.sorted(by: { $0.key < $1.key }) {
        let url = out.appendingPathComponent(name)
        let data = Data(text.utf8)
        if (try? Data(contentsOf: url)) != data { try data.write(to: url) }
    }
}

do {
    let spec = try Loader.load(file: specPath)
    let mode: Checker.Mode = (command == "client" || args.contains("--client")) ? .client : Checker.Mode.of(spec)
    let findings = Checker.check(spec, mode: mode)
    if !findings.isEmpty {
        fail(findings.map { $0.rendered(file: specPath) }.joined(separator: "\n"))
    }
    switch command {
    case "check":
        print("\(specPath): ok" + (mode == .client ? " (client contract)" : ""))
    case "client":
        guard let output = option("--output") else { fail("client needs --output <dir>", code: 2) }
        guard let name = option("--name") ?? ClientRenderer.declaredName(spec) else {
            fail("client needs --name <Client> (or x-client-name in the spec's info)", code: 2)
        }
        guard name.first?.isUppercase == true, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            fail("--name must be an UpperCamelCase Swift identifier (got \(name))", code: 2)
        }
        let model = ModelBuilder.build(spec)
        try write(ClientRenderer.render(model, clientName: name, source: URL(fileURLWithPath: specPath).lastPathComponent), to: output)
    case "generate" where mode == .client:
        fail("\(specPath) is a client contract (info.x-client-name): generate its client with `sitrep-gen client`", code: 2)
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
