import Dispatch
import Foundation
import Testing

@testable import GeneratorCore

/// The contract-drift guarantee, demonstrated: change the spec under an existing handler and the
/// handler stops compiling. The generated code is type-checked with `swiftc` against the modules
/// of this package's own build (Tools/test builds them first).
@Suite("contract drift", .serialized)
struct DriftTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var buildDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["SITREP_BUILD_DIR"] { return URL(fileURLWithPath: dir) }
        return root.appendingPathComponent(".build/debug").resolvingSymlinksInPath()
    }

    /// Generates Swift for `spec`, adds the existing handler, and type-checks it; returns swiftc's
    /// exit status and output.
    func typecheck(spec: String) async throws -> (Int32, String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sitrep-drift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let loaded = try Loader.load(text: spec)
        #expect(Checker.check(loaded).isEmpty)
        let files = ServerRenderer.render(ModelBuilder.build(loaded), specText: spec)
        var paths: [String] = []
        for (name, text) in files where name != "Router.swift" {
            let url = dir.appendingPathComponent(name)
            try Data(text.utf8).write(to: url)
            paths.append(url.path)
        }
        let handler = dir.appendingPathComponent("NotesHandler.swift")
        try FileManager.default.copyItem(at: Fixtures.directory.appendingPathComponent("drift/NotesHandler.txt"), to: handler)
        paths.append(handler.path)

        return try await Self.swiftcTypecheck(moduleName: "Drift", requiring: "SitrepRuntime", files: paths)
    }

    /// `swiftc -typecheck` of `files` as module `moduleName` against this package's build (its
    /// modules and the C module maps SwiftPM passes too); `requiring` names a module that must
    /// have been built. Returns swiftc's exit status and output.
    static func swiftcTypecheck(moduleName: String, requiring: String, files: [String]) async throws -> (Int32, String) {
        let build = Self.buildDirectory
        let modules = build.appendingPathComponent("Modules")
        let fm = FileManager.default
        guard fm.fileExists(atPath: modules.appendingPathComponent("\(requiring).swiftmodule").path) else {
            throw DriftSetupError(message: "no \(requiring) module under \(modules.path); build with `swift build --build-tests` first")
        }
        // C modules the runtime's dependencies import (SwiftPM passes the same module maps).
        var args = ["swiftc", "-typecheck", "-module-name", moduleName, "-I", modules.path]
        for entry in (try? fm.contentsOfDirectory(atPath: build.path)) ?? [] where entry.hasSuffix(".build") && !entry.contains("-tool") {
            let map = build.appendingPathComponent(entry).appendingPathComponent("module.modulemap").path
            if fm.fileExists(atPath: map) { args += ["-Xcc", "-fmodule-map-file=\(map)"] }
        }
        let checkouts = build.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("checkouts")
        if let e = fm.enumerator(atPath: checkouts.path) {
            while let rel = e.nextObject() as? String {
                if rel.hasSuffix("include/module.modulemap") && rel.contains("/Sources/") && !rel.contains("Benchmarks") {
                    args += ["-Xcc", "-fmodule-map-file=\(checkouts.appendingPathComponent(rel).path)"]
                }
            }
        }
        let arguments = args + files
        return try await offCooperativePool {  // swiftc takes seconds
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = arguments
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = pipe
            try p.run()
            let out = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: out, as: UTF8.self))
        }
    }

    struct DriftSetupError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    @Test func theExistingHandlerCompilesAgainstTheSpecItWasWrittenFor() async throws {
        let (status, output) = try await typecheck(spec: Fixtures.mini)
        #expect(status == 0, "\(output)")
    }

    @Test func aNewRequiredResponseFieldBreaksTheBuild() async throws {
        let changed = Fixtures.mini
            .replacing("required: [id, title, level, due, createdAt]", with: "required: [id, title, level, due, createdAt, summary]")
            .replacing(
                "        createdAt: {type: string, format: date-time}\n",
                with: "        createdAt: {type: string, format: date-time}\n        summary: {type: string}\n")
        let (status, output) = try await typecheck(spec: changed)
        #expect(status != 0)
        #expect(output.contains("missing argument for parameter 'summary'"), "\(output)")
    }

    @Test func aNewOperationIsRequiredOfTheHandler() async throws {
        let changed = Fixtures.mini.replacing(
            "      x-planned: true\n", with: "")
        let (status, output) = try await typecheck(spec: changed)
        #expect(status != 0)
        #expect(output.contains("does not conform to protocol 'NotesAPI'"), "\(output)")
    }
}
