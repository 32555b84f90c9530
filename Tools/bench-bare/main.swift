// The bare-Hummingbird side of `Tools/bench`'s A/B: one route that answers every GET of a path
// with fixed bytes (captured from Sitrep's own answer), with nothing generated in between:
// no middleware, authentication, parsing or encoding. What Sitrep's generated route costs on
// top of the HTTP stack is the difference.
//
//   sitrep-bench-bare --port P --path /v1/dashboard --body FILE [--content-type T] [--etag E]
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

@main
struct BenchBare {
    static func main() async throws {
        var options: [String: String] = ["--content-type": "application/json"]
        var args = CommandLine.arguments.dropFirst()
        while let key = args.popFirst() {
            guard let value = args.popFirst() else { fatalError("missing value for \(key)") }
            options[key] = value
        }
        guard let portText = options["--port"], let port = Int(portText), let path = options["--path"],
            let bodyPath = options["--body"], let body = FileManager.default.contents(atPath: bodyPath)
        else {
            fatalError("usage: sitrep-bench-bare --port P --path /p --body FILE [--content-type T] [--etag E]")
        }
        let bytes = ByteBuffer(bytes: body)
        var headers: HTTPFields = [.contentType: options["--content-type"]!]
        if let etag = options["--etag"] { headers[.eTag] = etag }
        let fixed = headers
        let router = Router()
        router.get(RouterPath(path)) { _, _ in
            Response(status: .ok, headers: fixed, body: .init(byteBuffer: bytes))
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        try await app.runService()
    }
}
