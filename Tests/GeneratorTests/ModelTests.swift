import Dispatch
import Foundation
import Testing

@testable import GeneratorCore

@Suite("model stage")
struct ModelTests {
    let model: APIModel

    init() throws {
        model = ModelBuilder.build(try Loader.load(text: Fixtures.mini))
    }

    @Test func operationsInSpecOrder() {
        #expect(model.operations.map(\.operationId) == ["listNotes", "createNote", "deleteNote"])
        #expect(model.operations.map(\.typeName) == ["ListNotes", "CreateNote", "DeleteNote"])
        #expect(model.tags == [TagModel(name: "Notes", protocolName: "NotesAPI", description: "Notes to self.")])
    }

    @Test func enforcementDeclarations() throws {
        let create = try #require(model.operations.first { $0.operationId == "createNote" })
        #expect(create.security == ["bearerAuth"])
        #expect(create.roles == ["Sitrep.Admin"])
        #expect(create.rateLimit == "writes")
        #expect(!create.mfa && !create.idempotency && !create.planned)
        let delete = try #require(model.operations.first { $0.operationId == "deleteNote" })
        #expect(delete.planned)
    }

    @Test func parametersWithDefaultsAndArrays() throws {
        let list = try #require(model.operations.first)
        #expect(list.parameters.map(\.swiftName) == ["limit", "level"])
        #expect(list.parameters[0].defaultValue == "50")
        #expect(
            list.parameters[0].type
                == .integer(minimum: .init(value: 1, exclusive: false), maximum: .init(value: 200, exclusive: false), int32: false))
        #expect(list.parameters[1].type == .array(.named("Level", isEnum: true), minItems: nil, maxItems: nil))
    }

    @Test func responsesSortedWithHeaders() throws {
        let create = try #require(model.operations.first { $0.operationId == "createNote" })
        #expect(create.responses.map(\.status) == [201, 400, 401, 403, 413, 415, 422, 429, 500])
        #expect(create.responses[0].headers.map(\.swiftName) == ["location", "etag"])
        #expect(create.responses[0].body == .json(.named("Note", isEnum: false)))
        #expect(create.responses[1].body == .problem)
    }

    @Test func objectPropertiesKeepConstraintsAndNullability() throws {
        guard case .object(let note)? = model.schemas.first(where: { $0.name == "Note" }) else {
            Issue.record("Note missing")
            return
        }
        let byName = Dictionary(uniqueKeysWithValues: note.properties.map { ($0.jsonName, $0) })
        #expect(byName["region"]?.nullable == true && byName["region"]?.required == false)
        #expect(byName["due"]?.nullable == true && byName["due"]?.required == true)
        #expect(byName["parent"]?.type == .named("NoteInput", isEnum: false) && byName["parent"]?.nullable == true)
        #expect(byName["score"]?.type == .number(minimum: .init(value: 0, exclusive: false), maximum: .init(value: 1, exclusive: false)))
        guard case .object(let input)? = model.schemas.first(where: { $0.name == "NoteInput" }) else { return }
        #expect(input.closed)
    }

    @Test func enumCasesAreSwiftNames() {
        guard case .enumeration(let level)? = model.schemas.first(where: { $0.name == "Level" }) else {
            Issue.record("Level missing")
            return
        }
        #expect(level.cases == [EnumCaseIR(name: "low", value: "low"), EnumCaseIR(name: "veryHigh", value: "very_high")])
    }
}

@Suite("render stage")
struct RenderTests {
    @Test(arguments: ["Types.swift", "Operations.swift", "Protocols.swift", "Router.swift", "Spec.swift"])
    func goldenFiles(name: String) throws {
        let spec = try Loader.load(text: Fixtures.mini)
        let files = ServerRenderer.render(ModelBuilder.build(spec), specText: spec.text)
        let text = try #require(files[name])
        #expect(
            try Fixtures.golden(name, text),
            "Render of \(name) differs from Fixtures/golden/\(name); run with UPDATE_GOLDENS=1 if the change is intended")
    }

    /// `text/event-stream` responses become an `EventStream` the handler produces into, encoded
    /// as a streamed response rather than bytes.
    @Test func eventStreamResponsesAreStreamed() throws {
        let spec = Fixtures.mini.replacingOccurrences(
            of: "  /v1/notes/{noteId}:\n",
            with: """
                  /v1/notes/stream:
                    get:
                      operationId: streamNotes
                      tags: [Notes]
                      summary: Stream notes
                      x-roles: [Sitrep.Viewer]
                      responses:
                        '200':
                          description: Events.
                          content:
                            text/event-stream:
                              schema: {type: string}
                        '401': {$ref: '#/components/responses/Problem'}
                        '403': {$ref: '#/components/responses/Problem'}
                        '500': {$ref: '#/components/responses/Problem'}
                  /v1/notes/{noteId}:

                """)
        let loaded = try Loader.load(text: spec)
        let model = ModelBuilder.build(loaded)
        let stream = try #require(model.operations.first { $0.operationId == "streamNotes" })
        #expect(stream.responses.first?.body == .eventStream)
        let operations = try #require(ServerRenderer.render(model, specText: spec)["Operations.swift"])
        #expect(operations.contains("case ok(EventStream)") && operations.contains("planned: false, streams: true)"))
        #expect(operations.contains("return EncodedResponse(status: 200, contentType: \"text/event-stream\", stream: body)"))
    }

    /// A GET's JSON answer with an `ETag` (a representation served many times unchanged) may also
    /// be given encoded ahead; other answers with an `ETag` (a write's) may not.
    @Test func revalidatedReadsCanBeAnsweredPreEncoded() throws {
        let spec = Fixtures.mini.replacingOccurrences(
            of: "          description: A page.\n",
            with: "          description: A page.\n          headers:\n            ETag: {required: true, schema: {type: string}}\n")
        #expect(spec != Fixtures.mini)
        let operations = try #require(ServerRenderer.render(ModelBuilder.build(try Loader.load(text: spec)), specText: spec)["Operations.swift"])
        #expect(operations.contains("case ok(NotePage, etag: String)"))
        // The encoded-ahead answer carries its own ETag: the handler states it once, in `Encoded`.
        #expect(operations.contains("case okEncoded(Encoded<NotePage>)"))
        #expect(
            operations.contains(
                """
                        case .okEncoded(let body):
                            return try .json(200, body, validate: validate)
                        case .ok(let body, let etag):
                """))
        // createNote's 201 carries an ETag too, but a write's answer is made once.
        #expect(operations.contains("case created(Note, location: String, etag: String)"))
        #expect(!operations.contains("createdEncoded"))
        // Other headers of that answer stay the case's own, required or not.
        let more = spec.replacingOccurrences(
            of: "            ETag: {required: true, schema: {type: string}}\n",
            with: "            ETag: {required: true, schema: {type: string}}\n            X-Total: {schema: {type: string}}\n")
        #expect(more != spec)
        let moreOperations = try #require(
            ServerRenderer.render(ModelBuilder.build(try Loader.load(text: more)), specText: more)["Operations.swift"])
        #expect(moreOperations.contains("case okEncoded(Encoded<NotePage>, xTotal: String?)"))
        #expect(
            moreOperations.contains(
                """
                        case .okEncoded(let body, let xTotal):
                            var headers: [(HTTPField.Name, String)] = []
                            if let xTotal { headers.append((ResponseHeader.xTotal, xTotal)) }
                            return try .json(200, body, headers: headers, validate: validate)
                """))
        // Without the header, nothing changes.
        let plain = try #require(
            ServerRenderer.render(ModelBuilder.build(try Loader.load(text: Fixtures.mini)), specText: Fixtures.mini)["Operations.swift"])
        #expect(!plain.contains("Encoded("))
    }

    @Test func outputIsDeterministic() throws {
        let a = ServerRenderer.render(ModelBuilder.build(try Loader.load(text: Fixtures.mini)), specText: Fixtures.mini)
        let b = ServerRenderer.render(ModelBuilder.build(try Loader.load(text: Fixtures.mini)), specText: Fixtures.mini)
        #expect(a == b)
    }

    @Test func theRealContractPassesTheChecks() async throws {
        let url = Fixtures.directory.appendingPathComponent("../../../api/openapi.yaml").standardized
        // Seconds of CPU in a debug build: keep it off the cooperative pool other suites share.
        let findings = try await offCooperativePool { Checker.check(try Loader.load(file: url.path)).map(\.description) }
        #expect(findings == [])
    }
}

@Suite("docs page")
struct DocsTests {
    @Test func markdownSubsetAndEscaping() {
        #expect(
            Markdown.html("**Bold** and `code` <script>alert(1)</script>")
                == "<p><strong>Bold</strong> and <code>code</code> &lt;script&gt;alert(1)&lt;/script&gt;</p>")
        #expect(Markdown.html("## Conventions\n\n- one\n  more\n- two") == "<h4>Conventions</h4><ul><li>one more</li><li>two</li></ul>")
        #expect(
            Markdown.html("| a | b |\n| --- | --- |\n| `x` | y |")
                == "<table><tr><th>a</th><th>b</th></tr><tr><td><code>x</code></td><td>y</td></tr></table>")
    }

    @Test func everyOperationAndSchemaHasAnAnchor() throws {
        let model = ModelBuilder.build(try Loader.load(text: Fixtures.mini))
        let html = DocsRenderer.render(model)
        for op in model.operations { #expect(html.contains("<article id=\"\(op.operationId)\">")) }
        for s in model.schemas { #expect(html.contains("<article id=\"schema-\(s.name)\">")) }
        #expect(html.contains("<em>planned</em>"))
    }
}
