import Generated
import Hummingbird
import SitrepRuntime

extension Router where Context == SitrepRequestContext {
    /// `/openapi.yaml` byte for byte as in the repository, and `/docs`, the generated reference.
    public func registerContractDocuments() {
        let yaml = ByteBuffer(string: SitrepSpec.yaml)
        let html = ByteBuffer(string: SitrepSpec.docsHTML)
        get("/openapi.yaml") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/yaml; charset=utf-8", .cacheControl: "no-cache"], body: .init(byteBuffer: yaml))
        }
        get("/docs") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"], body: .init(byteBuffer: html))
        }
    }
}
