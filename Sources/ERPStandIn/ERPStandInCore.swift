import ERPClient
import Foundation
import Hummingbird
import NIOCore
import SitrepRuntime
import Synchronization

/// The state and request handling of an ``ERPStandIn``.
final class ERPStandInCore: Sendable {
    struct State: Sendable {
        var faults: [ERPStandIn.Fault] = []
        var steady: ERPStandIn.Fault = .none
        var requests: [ERPStandIn.Received] = []
    }

    let configuration: ERPStandInConfiguration
    let data: ERPDataSet
    let state = Mutex(State())

    init(configuration: ERPStandInConfiguration) {
        self.configuration = configuration
        self.data = ERPDataSet(configuration)
    }

    static let costCentrePattern = Pattern("^[A-Z0-9][A-Z0-9-]{1,19}$")

    func addRoutes(to router: Router<BasicRequestContext>) {
        let budgetLines: RouterPath = "/v1/cost-centres/:costCentre/budget-lines"
        let purchaseOrders: RouterPath = "/v1/cost-centres/:costCentre/purchase-orders"
        router.get(budgetLines) { request, context in
            await self.serve(request) { drift in self.listBudgetLines(request, costCentre: context.parameters.get("costCentre") ?? "", drift) }
        }
        router.get(purchaseOrders) { request, context in
            await self.serve(request) { drift in
                self.listPurchaseOrders(request, costCentre: context.parameters.get("costCentre") ?? "", drift)
            }
        }
        // Other methods on the same paths answer 405, after any fault (a non-idempotent call
        // meeting an outage, for the client's tests).
        for path in [budgetLines, purchaseOrders] {
            for method in [HTTPRequest.Method.post, .put, .patch, .delete] {
                router.on(path, method: method) { request, _ in
                    await self.serve(request) { _ in
                        var headers = HTTPFields()
                        headers[.allow] = "GET"
                        return Self.problem(405, code: "route.method_not_allowed", "Only GET is supported here.", request, headers: headers)
                    }
                }
            }
        }
    }

    // MARK: Faults and authentication

    /// Takes the next fault, applies delay and status faults, checks the key, then answers with
    /// `answer` (given the drift to apply, if any), recording the request.
    func serve(_ request: Request, _ answer: @Sendable (ERPStandIn.Fault) -> Response) async -> Response {
        let fault: ERPStandIn.Fault = state.withLock { s in
            s.faults.isEmpty ? s.steady : s.faults.removeFirst()
        }
        let response: Response
        switch fault {
        case .status(let status, let retryAfter):
            var headers = HTTPFields()
            if let retryAfter { headers[.retryAfter] = String(retryAfter) }
            let code =
                switch status {
                case 429: "rate_limit.exceeded"
                case 503: "service.unavailable"
                case 500: "internal.error"
                default: "fault.injected"
                }
            response = Self.problem(status, code: code, "Injected fault: HTTP \(status).", request, headers: headers)
        case .delay(let delay):
            try? await Task.sleep(for: delay)
            response = authenticated(request) ?? answer(.none)
        default:
            response = authenticated(request) ?? answer(fault)
        }
        let received = ERPStandIn.Received(
            method: request.method.rawValue, target: request.uri.description, status: Int(response.status.code), fault: fault,
            traceparent: request.headers[values: .traceparent].first)
        state.withLock { $0.requests.append(received) }
        return response
    }

    /// Nil when the request carries the API key; otherwise the 401 answer.
    func authenticated(_ request: Request) -> Response? {
        let given = request.headers[.authorization] ?? ""
        if given.hasPrefix("Bearer "), constantTimeEqual(given.dropFirst("Bearer ".count), configuration.apiKey) { return nil }
        var headers = HTTPFields()
        headers[.wwwAuthenticate] = #"Bearer realm="erp""#
        return Self.problem(401, code: "auth.unauthenticated", "A valid API key is required.", request, headers: headers)
    }

    // MARK: Operations

    /// The cost centre's problem (400, 403, 404), or nil when it may be read.
    func costCentreProblem(_ costCentre: String, _ request: Request) -> Response? {
        if !Self.costCentrePattern.matches(costCentre) || costCentre.count > 20 {
            return Self.problem(400, code: "request.invalid_parameter", "costCentre must match ^[A-Z0-9][A-Z0-9-]{1,19}$.", request)
        }
        if configuration.forbiddenCostCentres.contains(costCentre) {
            return Self.problem(403, code: "auth.forbidden", "This API key may not read cost centre \(costCentre).", request)
        }
        if !configuration.costCentres.contains(costCentre) {
            return Self.problem(404, code: "cost_centre.not_found", "No cost centre \(costCentre).", request)
        }
        return nil
    }

    func listBudgetLines(_ request: Request, costCentre: String, _ drift: ERPStandIn.Fault) -> Response {
        if let problem = costCentreProblem(costCentre, request) { return problem }
        let query = request.uri.queryParameters
        guard let raw = query.get("fiscalYear"), let year = Int(raw), (2000...2100).contains(year) else {
            return Self.problem(400, code: "request.invalid_parameter", "fiscalYear is required: a year from 2000 to 2100.", request)
        }
        let rows = data.budgetLines[costCentre]?[year] ?? []
        switch page(rows, id: \.id, filter: "budget-lines/\(costCentre)/\(year)", request) {
        case .problem(let problem): return problem
        case .page(let items, let next): return Self.json(BudgetLinePage(items: items, nextCursor: next).jsonBytes(), drift)
        }
    }

    func listPurchaseOrders(_ request: Request, costCentre: String, _ drift: ERPStandIn.Fault) -> Response {
        if let problem = costCentreProblem(costCentre, request) { return problem }
        var status: PurchaseOrderStatus?
        if let raw = request.uri.queryParameters.get("status") {
            guard let s = PurchaseOrderStatus(rawValue: raw) else {
                return Self.problem(400, code: "request.invalid_parameter", "status must be one of: \(PurchaseOrderStatus.allowedList).", request)
            }
            status = s
        }
        let rows = (data.purchaseOrders[costCentre] ?? []).filter { status == nil || $0.status == status }
        switch page(rows, id: \.id, filter: "purchase-orders/\(costCentre)/\(status?.rawValue ?? "*")", request) {
        case .problem(let problem): return problem
        case .page(let items, let next): return Self.json(PurchaseOrderPage(items: items, nextCursor: next).jsonBytes(), drift)
        }
    }

    // MARK: Paging

    enum Page<Row> {
        case page([Row], next: String?)
        case problem(Response)
    }

    /// One keyset page of `rows` (in id order) after the request's cursor, and the next cursor.
    func page<Row>(_ rows: [Row], id: (Row) -> String, filter: String, _ request: Request) -> Page<Row> {
        let query = request.uri.queryParameters
        var limit = 50
        if let raw = query.get("limit") {
            guard let n = Int(raw), (1...200).contains(n) else {
                return .problem(Self.problem(400, code: "request.invalid_parameter", "limit must be 1 to 200.", request))
            }
            limit = n
        }
        var after: String?
        if let cursor = query.get("cursor") {
            guard let last = Self.decodeCursor(String(cursor), filter: filter) else {
                return .problem(
                    Self.problem(
                        400, code: "pagination.invalid_cursor", "This cursor was not issued for these filters; start again without one.", request))
            }
            after = last
        }
        let remaining = after.map { last in rows.filter { id($0) > last } } ?? rows
        let items = Array(remaining.prefix(limit))
        let next = remaining.count > limit ? items.last.map { Self.encodeCursor(id($0), filter: filter) } : nil
        return .page(items, next: next)
    }

    static func encodeCursor(_ lastId: String, filter: String) -> String {
        Base64URL.encode(Array("v1|\(filter)|\(lastId)".utf8))
    }

    static func decodeCursor(_ cursor: String, filter: String) -> String? {
        guard cursor.count <= 512, let bytes = Base64URL.decode(cursor) else { return nil }
        let parts = String(decoding: bytes, as: UTF8.self).split(separator: "|", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "v1", parts[1] == filter, !parts[2].isEmpty else { return nil }
        return String(parts[2])
    }

    // MARK: Answers

    /// A 200 JSON answer, with `drift` applied to the first item of its `items`.
    static func json(_ bytes: [UInt8], _ drift: ERPStandIn.Fault) -> Response {
        var body = bytes
        switch drift {
        case .extraField, .omitField:
            if case .object(var page)? = try? JSONParser.parse(bytes) {
                if case .array(var items)? = page["items"], case .object(var first)? = items.first {
                    apply(drift, to: &first)
                    items[0] = .object(first)
                    page["items"] = .array(items)
                } else {
                    apply(drift, to: &page)
                }
                var w = JSONWriter()
                write(.object(page), to: &w)
                body = w.bytes
            }
        default:
            break
        }
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func apply(_ drift: ERPStandIn.Fault, to object: inout JSONObject) {
        switch drift {
        case .extraField(let name): object[name] = .string("drift")
        case .omitField(let name): object[name] = nil
        default: break
        }
    }

    static func write(_ value: JSONValue, to w: inout JSONWriter) {
        switch value {
        case .null: w.null()
        case .bool(let b): w.bool(b)
        case .number(let n): for byte in n.text.utf8 { w.raw(byte) }
        case .string(let s): w.string(s)
        case .array(let items):
            w.raw("[")
            for (i, item) in items.enumerated() {
                if i > 0 { w.raw(",") }
                write(item, to: &w)
            }
            w.raw("]")
        case .object(let o):
            w.raw("{")
            for (i, key) in o.keys.enumerated() {
                if i > 0 { w.raw(",") }
                w.string(key)
                w.raw(":")
                write(o[key] ?? .null, to: &w)
            }
            w.raw("}")
        }
    }

    /// An RFC 9457 problem as the contract's `Problem` schema describes it.
    static func problem(_ status: Int, code: String, _ detail: String, _ request: Request, headers: HTTPFields = HTTPFields()) -> Response {
        var w = JSONWriter(capacity: 256)
        w.raw("{\"type\":")
        w.string("/problems/" + code)
        w.raw(",\"title\":")
        w.string(Problem.defaultTitle(status))
        w.raw(",\"status\":")
        w.int(status)
        w.raw(",\"detail\":")
        w.string(detail)
        w.raw(",\"instance\":")
        w.string(request.uri.path)
        w.raw(",\"code\":")
        w.string(code)
        w.raw("}")
        var fields = headers
        fields[.contentType] = "application/problem+json"
        return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: w.bytes)))
    }
}

extension HTTPFields.Element.Name {
    /// W3C Trace Context's header, recorded to show the caller's trace reached the ERP.
    static let traceparent = Self("traceparent")!
}
