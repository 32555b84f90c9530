import Foundation
import Testing

@testable import GeneratorCore

/// One test per check-stage rule, pinning the message and the spec path it names.
@Suite("check stage")
struct CheckTests {
    let mini = Fixtures.mini
    let problem = "{$ref: '#/components/responses/Problem'}"

    @Test func theFixtureIsClean() {
        #expect(findings(mini) == [])
    }

    @Test func danglingRef() {
        let f = findings(mini.replacing("'#/components/schemas/NotePage'", with: "'#/components/schemas/NoteBook'"))
        #expect(f == ["paths./v1/notes.get.responses.200.content.application/json.schema: $ref '#/components/schemas/NoteBook' does not resolve"])
    }

    @Test func danglingResponseRef() {
        let f = findings(mini.replacing("'400': \(problem)", with: "'400': {$ref: '#/components/responses/Nope'}"))
        #expect(f == ["paths./v1/notes.get.responses.400: response $ref does not resolve"])
    }

    @Test func missingOperationId() {
        let f = findings(mini.replacing("operationId: listNotes\n      ", with: ""))
        #expect(f == ["paths./v1/notes.get: operation has no operationId"])
    }

    @Test func duplicateOperationId() {
        let f = findings(mini.replacing("operationId: createNote", with: "operationId: listNotes"))
        #expect(f == ["paths./v1/notes.post.operationId: operationId 'listNotes' is also used by paths./v1/notes.get"])
    }

    @Test func operationWithoutTag() {
        let f = findings(mini.replacing("tags: [Notes]", with: "tags: []"))
        #expect(f == ["paths./v1/notes.get.tags: operation must have exactly one tag (has 0)"])
    }

    @Test func undeclaredTag() {
        let f = findings(mini.replacing("tags: [Notes]", with: "tags: [Jotter]"))
        #expect(f == ["paths./v1/notes.get.tags: tag 'Jotter' is not declared in the top-level tags"])
    }

    @Test func errorResponseThatIsNotProblemJSON() {
        let f = findings(
            mini.replacing(
                "'400': \(problem)",
                with: "'400': {description: Bad., content: {application/json: {schema: {$ref: '#/components/schemas/Problem'}}}}"))
        #expect(f == ["paths./v1/notes.get.responses.400: 400 response is not application/problem+json with schema Problem"])
    }

    @Test func unknownRole() {
        let f = findings(mini.replacing("x-roles: [Sitrep.Viewer]", with: "x-roles: [Sitrep.Janitor]"))
        #expect(
            f == [
                "paths./v1/notes.get.x-roles: unknown role 'Sitrep.Janitor' in x-roles (known: Sitrep.Admin, Sitrep.BriefingWriter, Sitrep.Executive, Sitrep.Ingest, Sitrep.Viewer)"
            ])
    }

    @Test func securedOperationWithoutRoles() {
        let f = findings(mini.replacing("      x-roles: [Sitrep.Viewer]\n", with: ""))
        #expect(f == ["paths./v1/notes.get: secured operation has no x-roles"])
    }

    @Test func badMFAValue() {
        let f = findings(mini.replacing("x-rate-limit: writes", with: "x-rate-limit: writes\n      x-mfa: yes-please"))
        #expect(f == ["paths./v1/notes.post.x-mfa: x-mfa must be 'required' when present"])
    }

    @Test func undocumentedEnforcementStatus() {
        let f = findings(mini.replacing("        '429': \(problem)\n", with: ""))
        #expect(f == ["paths./v1/notes.post.responses: operation declares x-rate-limit but does not document 429"])
    }

    @Test func plannedWithout501() {
        let f = findings(mini.replacing("        '501': \(problem)\n", with: ""))
        #expect(f == ["paths./v1/notes/{noteId}.delete.responses: operation is x-planned but does not document 501"])
    }

    @Test func inlineObjectSchema() {
        let f = findings(mini.replacing("nextCursor: {type: [string, 'null']}", with: "nextCursor: {type: object}"))
        #expect(
            f == [
                "components.schemas.NotePage.properties.nextCursor: inline object schema is not supported; move it to components/schemas and use $ref"
            ])
    }

    @Test func allOfIsUnsupported() {
        let f = findings(mini.replacing("title: {type: string}", with: "title: {allOf: [{type: string}]}"))
        #expect(f == ["components.schemas.Note.properties.title.allOf: allOf is not supported"])
    }

    @Test func oneOfOtherThanNullableRef() {
        let f = findings(mini.replacing("- {type: 'null'}", with: "- {type: string}"))
        #expect(f == ["components.schemas.Note.properties.parent.oneOf: oneOf is only supported as [$ref, {type: null}] (a nullable reference)"])
    }

    @Test func unsupportedFormat() {
        let f = findings(mini.replacing("format: email", with: "format: hostname"))
        #expect(
            f == [
                "components.schemas.NoteInput.properties.email.format: string format 'hostname' is not supported (uuid, date-time, date, email, uri)"
            ])
    }

    @Test func patternThatDoesNotCompile() {
        let f = findings(mini.replacing("pattern: '^[a-z]+$'", with: "pattern: '^[a-z+$'"))
        #expect(f == ["components.schemas.NoteInput.properties.tags.items.pattern: pattern '^[a-z+$' does not compile"])
    }

    @Test func cookieParameter() {
        let scalar = findings(
            mini.replacing(
                "        - name: limit\n",
                with: "        - name: theme\n          in: cookie\n          schema: {type: string}\n        - name: limit\n"))
        #expect(scalar == [])
        let array = findings(
            mini.replacing(
                "        - name: limit\n",
                with: "        - name: theme\n          in: cookie\n          schema: {type: array, items: {type: string}}\n        - name: limit\n"))
        #expect(array == ["paths./v1/notes.get.parameters.theme: array parameters are only supported in the query"])
    }

    @Test func problemSchemaMustMatchTheRuntime() {
        let f = findings(mini.replacing("        detail: {type: string}\n", with: ""))
        #expect(f == ["components.schemas.Problem.properties: Problem must have property 'detail' (the runtime's problem shape)"])
    }

    @Test func enumMustBeStrings() {
        let f = findings(mini.replacing("      type: string\n      enum: [low, very_high]", with: "      type: integer\n      enum: [1, 2]"))
        #expect(f == ["components.schemas.Level: non-string enum is not supported; use string values"])
    }

    @Test func diagnosticsCarryLines() throws {
        let spec = try Loader.load(text: mini.replacing("x-roles: [Sitrep.Viewer]", with: "x-roles: [Sitrep.Janitor]"))
        let d = try #require(Checker.check(spec).first)
        #expect(d.line == 16)
        #expect(d.rendered(file: "api/openapi.yaml").hasPrefix("api/openapi.yaml:16: error: paths./v1/notes.get.x-roles: unknown role"))
    }
}
