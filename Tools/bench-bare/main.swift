// The bare-Hummingbird side of `Tools/bench`'s A/B: one route that answers every GET of a path
// with fixed bytes (captured from Sitrep's own answer), with nothing generated in between:
// no middleware, authentication, parsing or encoding. What Sitrep's generated route costs on
// top of the HTTP stack is the difference.
//
//   sitrep-bench-bare --port P --path /v1/dashboard --body FILE [--header "Name: value"]…
//     [--idle-timeout SECONDS]
//
// `--header` (repeatable) gives the answer's header fields: the benches pass the ones Sitrep's
// answer had (Content-Type, ETag, X-Request-ID; not Date or Content-Length, which Hummingbird
// writes for both), so both servers send the same bytes. `--idle-timeout` is the server setting
// `sitrep serve` runs with (SITREP_IDLE_TIMEOUT_SECONDS), so both run the same HTTP stack.
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

@main
struct BenchBare {
    static func main() async throws {
        var options: [String: String] = [:]
        var headers = HTTPFields()
        var args = CommandLine.arguments.dropFirst()
        while let key = args.popFirst() {
            guard let value = args.popFirst() else { fatalError("missing value for \(key)") }
            if key == "--header" {
                let parts = value.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, let name = HTTPField.Name(String(parts[0])) else { fatalError("bad header \(value)") }
                headers.append(HTTPField(name: name, value: parts[1].trimmingCharacters(in: .whitespaces)))
            } else {
                options[key] = value
            }
        }
        guard let portText = options["--port"], let port = Int(portText), let path = options["--path"],
            let bodyPath = options["--body"], let body = FileManager.default.contents(atPath: bodyPath)
        else {
            fatalError("usage: sitrep-bench-bare --port P --path /p --body FILE [--header 'Name: value']… [--idle-timeout S]")
        }
        if headers[.contentType] == nil { headers.append(HTTPField(name: .contentType, value: "application/json")) }
        let bytes = ByteBuffer(bytes: body)
        let fixed = headers
        let router = Router()
        router.get(RouterPath(path)) { _, _ in
            Response(status: .ok, headers: fixed, body: .init(byteBuffer: bytes))
        }
        let idle = options["--idle-timeout"].flatMap(Int64.init).map { TimeAmount.seconds($0) }
        let app = Application(
            router: router, server: .http1(configuration: .init(idleTimeout: idle)),
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: nil))
        try await app.runService()
    }
}
