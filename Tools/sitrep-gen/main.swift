import Foundation
import GeneratorCore

// sitrep-gen: the contract's code generator, run by the SwiftPM plugin at build time.
//   sitrep-gen generate <spec.yaml> --output <dir>   load → check → model → render, write the Swift files
//   sitrep-gen check <spec.yaml>                     load → check only; prints every finding

func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(code)
}

let args = Array(CommandLine.arguments.dropFirst())
guard let command = args.first, args.count >= 2 else {
    fail("usage: sitrep-gen generate <spec.yaml> --output <dir> | sitrep-gen check <spec.yaml>", code: 2)
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
