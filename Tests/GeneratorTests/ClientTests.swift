import Dispatch
import Foundation
import Testing

@testable import GeneratorCore

extension Fixtures {
    static var miniClient: String { (try? text("client/mini-client.yaml")) ?? "" }
}

/// Findings of the check stage on `text` in `mode` (nil: decided by the spec).
func findings(_ text: String, mode: Checker.Mode?) -> [String] {
    do {
        return Checker.check(try Loader.load(text: text), mode: mode).map(\.description)
    } catch let e as DiagnosticError {
        return e.diagnostics.map(\.description)
    } catch {
        return ["\(error)"]
    }
}

/// The check stage's client mode: one test per rule, pinning the message and the spec path.
@Suite("check stage, client contracts")
struct ClientCheckTests {
    let spec = Fixtures.miniClient
    let problem = "{$ref: '#/components/responses/Problem'}"

    @Test func theFixtureIsClean() {
        #expect(findings(spec) == [])
    }

    @Test func xClientNameMakesAClientContract() throws {
        #expect(Checker.Mode.of(try Loader.load(text: spec)) == .client)
        #expect(Checker.Mode.of(try Loader.load(text: Fixtures.mini)) == .server)
    }

    /// The same contract checked as a server contract fails on what only a server needs.
    @Test func asAServerContractItLacksServerRules() {
        let f = findings(spec, mode: .server)
        #expect(f.contains("paths./v1/items.get: secured operation has no x-roles"))
        #expect(f.contains("components.schemas.Problem.properties: Problem must have property 'code' (the runtime's problem shape)"))
    }

    @Test func serverOnlyExtensionsAreRefused() {
        let f = findings(
            spec.replacing("summary: List items\n", with: "summary: List items\n      x-roles: [Sitrep.Viewer]\n      x-rate-limit: writes\n"))
        #expect(
            f == [
                "paths./v1/items.get.x-roles: x-roles is enforced by a server; a client contract cannot declare it",
                "paths./v1/items.get.x-rate-limit: x-rate-limit is enforced by a server; a client contract cannot declare it",
            ])
    }

    @Test func onlyBearerAuth() {
        let f = findings(
            spec.replacing(
                "    bearerAuth: {type: http, scheme: bearer}\n",
                with: "    bearerAuth: {type: http, scheme: bearer}\n    sessionCookie: {type: apiKey, in: cookie, name: s}\n"))
        #expect(
            f == [
                "components.securitySchemes.sessionCookie: security scheme 'sessionCookie' is not supported in a client contract (supported: bearerAuth)"
            ])
    }

    @Test func exactlyOneSuccessResponse() {
        let f = findings(
            spec.replacing(
                "        '204': {description: Deleted.}\n", with: "        '204': {description: Deleted.}\n        '202': {description: Queued.}\n"))
        #expect(f == ["paths./v1/items/{itemId}.delete.responses: a client operation must document exactly one success response (has 2: 202, 204)"])
    }

    @Test func jsonRequestBodiesOnly() {
        let f = findings(
            spec.replacing(
                "          application/json:\n            schema: {$ref: '#/components/schemas/ItemInput'}\n",
                with: "          text/csv:\n            schema: {type: string}\n"))
        #expect(f == ["paths./v1/items.post.requestBody.content: a client sends JSON request bodies only (found text/csv)"])
    }

    @Test func jsonSuccessResponsesOnly() {
        let f = findings(
            spec.replacing(
                "          description: The tags.\n          content:\n            application/json:\n",
                with: "          description: The tags.\n          content:\n            text/event-stream:\n"))
        #expect(
            f == [
                "paths./v1/tags/{group name}.get.responses.200.content.text/event-stream: a client reads JSON success responses only (found text/event-stream)"
            ])
    }

    @Test func cookieParametersAreRefused() {
        let f = findings(spec.replacing("        - name: archived\n          in: query\n", with: "        - name: archived\n          in: cookie\n"))
        #expect(f == ["paths./v1/items.get.parameters.archived: cookie parameters are not supported in a client contract"])
    }

    @Test func theProblemNeedsRFC9457Members() {
        let f = findings(spec.replacing("        status: {type: integer}\n        detail", with: "        status: {type: string}\n        detail"))
        #expect(f == ["components.schemas.Problem.properties.status: Problem property 'status' must be of type integer (RFC 9457)"])
        let g = findings(
            spec.replacing("        title: {type: string}\n        status", with: "        status").replacing(
                "required: [type, title, status]", with: "required: [type, status]"))
        #expect(g == ["components.schemas.Problem.properties: Problem must have property 'title' (RFC 9457)"])
    }

    @Test func theClientNameMustBeATypeName() {
        #expect(
            findings(spec.replacing("x-client-name: MiniClient", with: "x-client-name: mini-client")) == [
                "info.x-client-name: x-client-name must be an UpperCamelCase identifier"
            ])
        #expect(
            findings(spec.replacing("x-client-name: MiniClient", with: "x-client-name: Item")) == [
                "info.x-client-name: x-client-name 'Item' clashes with schema 'Item'"
            ])
    }

    @Test func schemaNamesOfTheClientRuntimeAreReserved() {
        let f = findings(spec.replacing("    Kind:\n", with: "    RetryPolicy:\n      type: string\n      enum: [a]\n    Kind:\n"))
        #expect(f == ["components.schemas.RetryPolicy: schema name 'RetryPolicy' clashes with a name the generated code uses"])
    }

    @Test func statusesTheClientReliesOnMustBeDocumented() {
        let f = findings(
            spec.replacing("        '204': {description: Deleted.}\n        '400': \(problem)\n", with: "        '204': {description: Deleted.}\n"))
        #expect(f == ["paths./v1/items/{itemId}.delete.responses: operation takes parameters or a body but does not document 400"])
    }

    @Test func theRealERPContractPassesTheChecks() async throws {
        let url = Fixtures.directory.appendingPathComponent("../../../api/erp.yaml").standardized
        let result = try await offCooperativePool { () -> ([String], Checker.Mode) in
            let spec = try Loader.load(file: url.path)
            return (Checker.check(spec).map(\.description), Checker.Mode.of(spec))
        }
        #expect(result.0 == [])
        #expect(result.1 == .client)
    }
}

@Suite("render stage, client")
struct ClientRenderTests {
    static func render(_ text: String = Fixtures.miniClient) throws -> [String: String] {
        let spec = try Loader.load(text: text)
        return ClientRenderer.render(ModelBuilder.build(spec), clientName: "MiniClient", source: "mini-client.yaml")
    }

    @Test(arguments: ClientRenderer.fileNames)
    func goldenFiles(name: String) throws {
        let text = try #require(try Self.render()[name])
        #expect(
            try Fixtures.golden("client/" + name, text),
            "Render of \(name) differs from Fixtures/golden/client/\(name); run with UPDATE_GOLDENS=1 if the change is intended")
    }

    @Test func outputIsDeterministic() throws {
        let runs = try (0..<3).map { _ in try Self.render() }
        #expect(runs[0] == runs[1] && runs[1] == runs[2])
        #expect(Set(runs[0].keys) == Set(ClientRenderer.fileNames))
    }

    @Test func theNameComesFromTheSpecOrTheCaller() throws {
        let spec = try Loader.load(text: Fixtures.miniClient)
        #expect(ClientRenderer.declaredName(spec) == "MiniClient")
        let files = ClientRenderer.render(ModelBuilder.build(spec), clientName: "VendorClient", source: "x.yaml")
        #expect(files["Client.swift"]?.contains("public struct VendorClient: Sendable {") == true)
    }

    /// Another system's problem is read by the runtime, never rendered (it would shadow Sitrep's).
    @Test func theProblemSchemaIsNotRendered() throws {
        let types = try #require(try Self.render()["Types.swift"])
        #expect(!types.contains("struct Problem"))
        #expect(types.contains("public struct ItemPage: Sendable, Equatable, Codable {"))
    }

    /// The generated client type-checks against the client runtime: every parameter kind, a JSON
    /// body, a body-less success and an inline array response (the ERP's contract has only GETs).
    @Test func theGeneratedClientCompiles() async throws {
        let usage = """
            import Foundation
            import SitrepClientRuntime
            import SitrepRuntime

            func use(_ client: MiniClient) async throws(APIClientError) -> Int {
                let page = try await client.listItems(limit: 10, kind: [.small, .extraLarge], since: Date(), archived: false)
                let item = try await client.createItem(body: ItemInput(name: "x", kind: .small, price: "1.50"))
                _ = try await client.getItem(itemId: item.id, asOf: CalendarDate(year: 2025, month: 1, day: 2)!, xTraceId: "t")
                try await client.deleteItem(itemId: item.id)
                let tags: [String] = try await client.listTags(groupName: "a/b c")
                return page.items.count + tags.count
            }
            """
        let (status, output) = try await ClientTypecheck.run(files: try Self.render(), usage: usage)
        #expect(status == 0, "\(output)")
    }
}

/// `swiftc -typecheck` of generated client files plus `usage`, against this package's build
/// (the modules `swift build --build-tests` left in `.build/debug`).
enum ClientTypecheck {
    static func run(files: [String: String], usage: String) async throws -> (Int32, String) {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("sitrep-client-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        var paths: [String] = []
        for (name, text) in files.sorted(by: { $0.key < $1.key }) + [("Usage.swift", usage)] {
            let url = dir.appendingPathComponent(name)
            try Data(text.utf8).write(to: url)
            paths.append(url.path)
        }
        return try await DriftTests.swiftcTypecheck(moduleName: "ClientCheck", requiring: "SitrepClientRuntime", files: paths)
    }
}
