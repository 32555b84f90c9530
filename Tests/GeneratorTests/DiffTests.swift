import Foundation
import Testing

@testable import GeneratorCore

/// One test per diff rule: a small contract, one edit, and the findings it must produce
/// (`BREAKING|ok rule location`).
@Suite("diff stage")
struct DiffTests {
    static let base = """
        openapi: 3.1.0
        info: {title: Things, version: 1.2.3}
        paths:
          /v1/things:
            get:
              operationId: listThings
              summary: List things
              parameters:
                - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 100}}
              responses:
                '200':
                  description: A page.
                  content:
                    application/json:
                      schema: {$ref: '#/components/schemas/Thing'}
                '404': {description: Missing.}
            post:
              operationId: createThing
              summary: Create a thing
              requestBody:
                required: false
                content:
                  application/json:
                    schema: {$ref: '#/components/schemas/ThingInput'}
              responses:
                '201': {description: Created.}
          /v1/things/{thingId}:
            delete:
              operationId: deleteThing
              summary: Delete a thing
              x-planned: true
              parameters:
                - {name: thingId, in: path, required: true, schema: {type: string}}
              responses:
                '204': {description: Deleted.}
        components:
          schemas:
            Level: {type: string, enum: [low, high]}
            Thing:
              type: object
              required: [id, name]
              properties:
                id: {type: string, format: uuid}
                name: {type: string}
                level: {$ref: '#/components/schemas/Level'}
                parent:
                  oneOf:
                    - {$ref: '#/components/schemas/Thing'}
                    - {type: 'null'}
            ThingInput:
              type: object
              required: [name]
              properties:
                name: {type: string, minLength: 1, maxLength: 50}
                level: {$ref: '#/components/schemas/Level'}
                tags: {type: array, maxItems: 5, items: {type: string}}

        """

    /// The findings from `base` to `new`, as `BREAKING|ok rule location`.
    func diff(_ new: String, from old: String = base) throws -> [String] {
        try ContractDiff.compare(old: Loader.load(text: old), new: Loader.load(text: new)).map {
            "\($0.breaking ? "BREAKING" : "ok") \($0.rule) \($0.location)"
        }
    }

    let list = "paths./v1/things.get"
    let create = "paths./v1/things.post"

    @Test func identicalDocumentsHaveNoFindings() throws {
        #expect(try diff(Self.base) == [])
    }

    // MARK: operations

    @Test func removedOperation() throws {
        let new = Self.base.replacing("  /v1/things/{thingId}:\n    delete:", with: "  /v1/things/{thingId}:\n    patch:")
        #expect(
            try diff(new) == [
                "BREAKING operation-removed paths./v1/things/{thingId}.delete",
                "ok operation-added paths./v1/things/{thingId}.patch",
            ])
    }

    @Test func renamedPathParameterIsTheSameOperation() throws {
        let released = Self.base.replacing("      x-planned: true\n", with: "")
        let new = released.replacing("/v1/things/{thingId}:", with: "/v1/things/{id}:").replacing("name: thingId", with: "name: id")
        // The parameter itself is matched by name, so it reads as removed + added.
        #expect(
            try diff(new, from: released) == [
                "ok parameter-removed paths./v1/things/{id}.delete.parameters.thingId",
                "BREAKING parameter-added-required paths./v1/things/{id}.delete.parameters.id",
            ])
    }

    @Test func changedOperationId() throws {
        #expect(
            try diff(Self.base.replacing("operationId: listThings", with: "operationId: getThings")) == [
                "BREAKING operation-id-changed \(list).operationId"
            ])
    }

    @Test func plannedOperationShipped() throws {
        #expect(
            try diff(Self.base.replacing("      x-planned: true\n", with: "")) == [
                "ok operation-shipped paths./v1/things/{thingId}.delete.x-planned"
            ])
    }

    @Test func plannedOperationMayChangeUntilItShips() throws {
        // It only ever answered 501, so its shape can still change, even as it ships.
        let new = Self.base.replacing("      x-planned: true\n", with: "")
            .replacing(
                "name: thingId, in: path, required: true, schema: {type: string}}\n",
                with:
                    "name: thingId, in: path, required: true, schema: {type: string}}\n        - {name: why, in: query, required: true, schema: {type: string}}\n"
            )
            .replacing("'204': {description: Deleted.}", with: "'200': {description: Deleted.}")
        #expect(
            try diff(new) == [
                "ok operation-shipped paths./v1/things/{thingId}.delete.x-planned",
                "ok parameter-added-required paths./v1/things/{thingId}.delete.parameters.why",
                "ok response-status-removed paths./v1/things/{thingId}.delete.responses.204",
                "ok response-status-added paths./v1/things/{thingId}.delete.responses.200",
            ])
    }

    @Test func componentSharedWithAPlannedOperationStillBreaks() throws {
        // The planned operation comes first and reaches Thing first; the released list
        // operation must still see the removed property as breaking.
        let withThing = Self.base.replacing(
            "'204': {description: Deleted.}",
            with:
                "'200':\n          description: Deleted.\n          content:\n            application/json:\n              schema: {$ref: '#/components/schemas/Thing'}"
        )
        let planned = withThing.components(separatedBy: "  /v1/things/{thingId}:\n")
        let tail = planned[1].components(separatedBy: "components:\n")
        let head = planned[0].components(separatedBy: "paths:\n")
        let old = head[0] + "paths:\n  /v1/things/{thingId}:\n" + tail[0] + head[1] + "components:\n" + tail[1]
        let new = old.replacing("        level: {$ref: '#/components/schemas/Level'}\n        parent:", with: "        parent:")
        let findings = try diff(new, from: old)
        #expect(findings.first == "ok response-property-removed components.schemas.Thing.properties.level")
        #expect(findings.contains("BREAKING response-property-removed components.schemas.Thing.properties.level"))
    }

    @Test func shippedOperationPlannedAgain() throws {
        let new = Self.base.replacing("operationId: listThings\n", with: "operationId: listThings\n      x-planned: true\n")
        #expect(try diff(new) == ["BREAKING operation-planned \(list).x-planned"])
    }

    @Test func descriptionsAreNotBreaking() throws {
        let new = Self.base.replacing("summary: List things", with: "summary: List the things")
            .replacing("name: {type: string}", with: "name: {type: string, description: The name.}")
        #expect(
            try diff(new) == [
                "ok description-changed \(list)",
                "ok description-changed components.schemas.Thing.properties.name",
            ])
    }

    // MARK: responses and media types

    @Test func removedResponseStatus() throws {
        let new = Self.base.replacing("        '404': {description: Missing.}\n", with: "")
        #expect(try diff(new) == ["BREAKING response-status-removed \(list).responses.404"])
    }

    @Test func addedResponseStatus() throws {
        let new = Self.base.replacing("'404': {description: Missing.}", with: "'404': {description: Missing.}\n        '410': {description: Gone.}")
        #expect(try diff(new) == ["ok response-status-added \(list).responses.410"])
    }

    @Test func removedResponseMediaType() throws {
        // The first application/json is the 200 response's.
        let new = Self.base.replacing("application/json:", with: "application/cbor:")
        #expect(
            try diff(new) == [
                "BREAKING media-type-removed \(list).responses.200.content.application/json",
                "ok media-type-added \(list).responses.200.content.application/cbor",
            ])
    }

    @Test func eventStreamEventsDescribed() throws {
        // A stream documented as a plain string, then per event (OpenAPI 3.2's itemSchema reading).
        let stream = """
              /v1/things/stream:
                get:
                  operationId: streamThings
                  summary: Stream things
                  responses:
                    '200':
                      description: Events.
                      content:
                        text/event-stream:
                          schema: {type: string}

            """
        let released = Self.base.replacing("components:\n", with: stream + "components:\n")
        let described = released.replacing(
            "schema: {type: string}\ncomponents:",
            with: "schema: {type: object, required: [data], properties: {data: {type: string}}}\ncomponents:")
        #expect(
            try diff(described, from: released) == [
                "ok event-schema-described paths./v1/things/stream.get.responses.200.content.text/event-stream.schema"
            ])
        // A constrained string did promise something about the stream: changing its type still breaks.
        let constrained = released.replacing("schema: {type: string}\ncomponents:", with: "schema: {type: string, maxLength: 10}\ncomponents:")
        #expect(
            try diff(described, from: constrained) == [
                "BREAKING type-changed paths./v1/things/stream.get.responses.200.content.text/event-stream.schema"
            ])
    }

    @Test func removedRequestMediaType() throws {
        let new = Self.base.replacing(
            "application/json:\n            schema: {$ref: '#/components/schemas/ThingInput'}",
            with: "application/merge-patch+json:\n            schema: {$ref: '#/components/schemas/ThingInput'}")
        #expect(
            try diff(new) == [
                "BREAKING media-type-removed \(create).requestBody.content.application/json",
                "ok media-type-added \(create).requestBody.content.application/merge-patch+json",
            ])
    }

    @Test func removedResponseProperty() throws {
        let new = Self.base.replacing("        name: {type: string}\n        level", with: "        level")
            .replacing("required: [id, name]", with: "required: [id]")
        #expect(try diff(new) == ["BREAKING response-property-removed components.schemas.Thing.properties.name"])
    }

    @Test func addedResponseProperty() throws {
        let new = Self.base.replacing("name: {type: string}\n", with: "name: {type: string}\n        note: {type: string}\n")
        #expect(try diff(new) == ["ok response-property-added components.schemas.Thing.properties.note"])
    }

    @Test func responsePropertyMadeOptional() throws {
        let new = Self.base.replacing("required: [id, name]", with: "required: [id]")
        #expect(try diff(new) == ["BREAKING response-property-optional components.schemas.Thing.properties.name"])
    }

    @Test func responsePropertyMadeNullable() throws {
        let new = Self.base.replacing("name: {type: string}\n", with: "name: {type: [string, 'null']}\n")
        #expect(try diff(new) == ["BREAKING response-property-nullable components.schemas.Thing.properties.name"])
    }

    @Test func responsePropertyTypeChanged() throws {
        let new = Self.base.replacing("name: {type: string}\n", with: "name: {type: integer}\n")
        #expect(try diff(new) == ["BREAKING type-changed components.schemas.Thing.properties.name"])
    }

    @Test func responseFormatChanged() throws {
        let new = Self.base.replacing("id: {type: string, format: uuid}", with: "id: {type: string, format: uri}")
        #expect(try diff(new) == ["BREAKING type-changed components.schemas.Thing.properties.id"])
    }

    @Test func responseEnumValueAdded() throws {
        // Level is used on both sides: a new value is breaking in responses, fine in requests.
        let new = Self.base.replacing("enum: [low, high]", with: "enum: [low, high, critical]")
        #expect(
            try diff(new) == [
                "BREAKING response-enum-value-added components.schemas.Level",
                "ok request-enum-value-added components.schemas.Level",
            ])
    }

    @Test func responseOneOfAlternativeAdded() throws {
        let old = Self.base.replacing("            - {type: 'null'}\n", with: "            - {type: string}\n")
        let new = Self.base.replacing("            - {type: 'null'}\n", with: "            - {type: string}\n            - {type: integer}\n")
        #expect(try diff(new, from: old) == ["BREAKING response-alternative-added components.schemas.Thing.properties.parent"])
        // X | null → X | null | string is no longer "X or null": a type change.
        let widened = Self.base.replacing("            - {type: 'null'}\n", with: "            - {type: 'null'}\n            - {type: string}\n")
        #expect(try diff(widened) == ["BREAKING type-changed components.schemas.Thing.properties.parent"])
    }

    // MARK: requests

    @Test func newRequiredParameter() throws {
        let new = Self.base.replacing(
            "        - {name: limit,", with: "        - {name: region, in: query, required: true, schema: {type: string}}\n        - {name: limit,")
        #expect(try diff(new) == ["BREAKING parameter-added-required \(list).parameters.region"])
    }

    @Test func newOptionalParameter() throws {
        let new = Self.base.replacing(
            "        - {name: limit,", with: "        - {name: region, in: query, schema: {type: string}}\n        - {name: limit,")
        #expect(try diff(new) == ["ok parameter-added \(list).parameters.region"])
    }

    @Test func parameterMadeRequired() throws {
        let new = Self.base.replacing("{name: limit, in: query,", with: "{name: limit, in: query, required: true,")
        #expect(try diff(new) == ["BREAKING parameter-made-required \(list).parameters.limit"])
    }

    @Test func parameterTypeChanged() throws {
        let new = Self.base.replacing("schema: {type: integer, minimum: 1, maximum: 100}", with: "schema: {type: string}")
        #expect(try diff(new) == ["BREAKING type-changed \(list).parameters.limit"])
    }

    @Test func newRequiredRequestProperty() throws {
        let new = Self.base.replacing("required: [name]", with: "required: [name, code]")
            .replacing("tags: {type: array,", with: "code: {type: string}\n        tags: {type: array,")
        #expect(try diff(new) == ["BREAKING request-property-added-required components.schemas.ThingInput.properties.code"])
    }

    @Test func newOptionalRequestProperty() throws {
        let new = Self.base.replacing("tags: {type: array,", with: "code: {type: string}\n        tags: {type: array,")
        #expect(try diff(new) == ["ok request-property-added components.schemas.ThingInput.properties.code"])
    }

    @Test func requestPropertyMadeRequired() throws {
        let new = Self.base.replacing("required: [name]", with: "required: [name, tags]")
        #expect(try diff(new) == ["BREAKING request-property-made-required components.schemas.ThingInput.properties.tags"])
    }

    @Test func requestPropertyRemovedFromAClosedObject() throws {
        let new = Self.base.replacing("        tags: {type: array, maxItems: 5, items: {type: string}}\n", with: "")
        #expect(try diff(new) == ["ok request-property-removed components.schemas.ThingInput.properties.tags"])
        let closed = Self.base.replacing("required: [name]\n", with: "required: [name]\n      additionalProperties: false\n")
        #expect(
            try diff(closed.replacing("        tags: {type: array, maxItems: 5, items: {type: string}}\n", with: ""), from: closed) == [
                "BREAKING request-property-removed components.schemas.ThingInput.properties.tags"
            ])
    }

    @Test func requestBodyMadeRequired() throws {
        let new = Self.base.replacing("required: false", with: "required: true")
        #expect(try diff(new) == ["BREAKING request-body-made-required \(create).requestBody"])
    }

    @Test func requestEnumValueRemoved() throws {
        let new = Self.base.replacing("enum: [low, high]", with: "enum: [low]")
        #expect(
            try diff(new) == [
                "ok response-enum-value-removed components.schemas.Level",
                "BREAKING request-enum-value-removed components.schemas.Level",
            ])
    }

    @Test func requestConstraintsNarrowed() throws {
        let cases: [(String, String, String)] = [
            ("maxLength: 50", "maxLength: 40", "components.schemas.ThingInput.properties.name"),
            ("minLength: 1", "minLength: 2", "components.schemas.ThingInput.properties.name"),
            ("maxItems: 5", "maxItems: 4", "components.schemas.ThingInput.properties.tags"),
            ("items: {type: string}", "items: {type: string, pattern: '^[a-z]+$'}", "components.schemas.ThingInput.properties.tags.items"),
            ("items: {type: string}", "items: {type: string, format: email}", "components.schemas.ThingInput.properties.tags.items"),
            ("maximum: 100", "maximum: 50", "\(list).parameters.limit"),
            ("minimum: 1", "minimum: 2", "\(list).parameters.limit"),
            ("minimum: 1", "exclusiveMinimum: 1", "\(list).parameters.limit"),
        ]
        for (from, to, location) in cases {
            #expect(try diff(Self.base.replacing(from, with: to)) == ["BREAKING request-constraint-narrowed \(location)"], "\(from) → \(to)")
        }
    }

    @Test func requestPatternChanged() throws {
        let old = Self.base.replacing("items: {type: string}", with: "items: {type: string, pattern: '^[a-z]+$'}")
        let new = Self.base.replacing("items: {type: string}", with: "items: {type: string, pattern: '^[a-z0-9]+$'}")
        #expect(try diff(new, from: old) == ["BREAKING request-constraint-narrowed components.schemas.ThingInput.properties.tags.items"])
    }

    @Test func requestConstraintsWidened() throws {
        let new = Self.base.replacing("maxLength: 50", with: "maxLength: 100").replacing("maximum: 100", with: "maximum: 200")
        #expect(
            try diff(new) == [
                "ok request-constraint-widened \(list).parameters.limit",
                "ok request-constraint-widened components.schemas.ThingInput.properties.name",
            ])
    }

    @Test func responseConstraintsAreNotRequestRules() throws {
        // `Thing` is only ever returned: a new maxLength there is the server's business.
        let new = Self.base.replacing("name: {type: string}\n", with: "name: {type: string, maxLength: 10}\n")
        #expect(try diff(new) == [])
    }

    @Test func cyclicSchemasTerminate() throws {
        // Thing.parent refers back to Thing; a change inside is reported once.
        let new = Self.base.replacing("id: {type: string, format: uuid}", with: "id: {type: integer}")
        #expect(try diff(new) == ["BREAKING type-changed components.schemas.Thing.properties.id"])
    }

    // MARK: verdict

    func verdict(_ new: String, from old: String = base) throws -> ContractDiff.Verdict {
        let o = try Loader.load(text: old)
        let n = try Loader.load(text: new)
        return ContractDiff.verdict(old: o, new: n, findings: ContractDiff.compare(old: o, new: n))
    }

    @Test func breakingChangeWithoutMajorBumpFails() throws {
        let new = Self.base.replacing("version: 1.2.3", with: "version: 1.3.0").replacing("required: false", with: "required: true")
        #expect(try verdict(new).passes == false)
    }

    @Test func breakingChangeWithMajorBumpPasses() throws {
        let new = Self.base.replacing("version: 1.2.3", with: "version: 2.0.0").replacing("required: false", with: "required: true")
        let v = try verdict(new)
        #expect(v.passes)
        #expect(v.reason.contains("1.2.3 → 2.0.0"))
    }

    @Test func nonBreakingChangesPassWithoutBump() throws {
        #expect(try verdict(Self.base.replacing("      x-planned: true\n", with: "")).passes)
    }

    @Test func nonSemverVersionFailsABreakingChange() throws {
        let new = Self.base.replacing("version: 1.2.3", with: "version: v2").replacing("required: false", with: "required: true")
        #expect(try verdict(new).passes == false)
    }

    // MARK: the real contract

    @Test func theContractHasNoBreakingChangesSinceTheLastRelease() async throws {
        let api = Fixtures.directory.appendingPathComponent("../../../api").standardized
        let released = try FileManager.default.contentsOfDirectory(atPath: api.appendingPathComponent("released").path)
            .filter { $0.hasPrefix("openapi-") && $0.hasSuffix(".yaml") }
        #expect(released.contains("openapi-1.0.0.yaml"))
        let breaking = try await offCooperativePool {
            let old = try Loader.load(file: api.appendingPathComponent("released/openapi-1.0.0.yaml").path)
            let new = try Loader.load(file: api.appendingPathComponent("openapi.yaml").path)
            return ContractDiff.compare(old: old, new: new).filter(\.breaking).map(\.description)
        }
        #expect(breaking == [])
    }
}
