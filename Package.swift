// swift-tools-version: 6.1
// Sitrep: contract-first API. `api/openapi.yaml` is the source of truth; the
// build-tool plugin in `Plugins/` runs the generator in `Tools/` over it and
// fills the `Generated` target at build time.
import PackageDescription

/// How the release binaries are laid out (Linux): linked by lld, with the functions `sitrep serve`
/// runs placed together at the front of the code, hottest first, as `Tools/layout/sitrep.order`
/// lists them (`Tools/layout/generate` writes it from a profile), and relative relocations packed
/// (RELR, glibc 2.36 or newer). Scattered over the code, those functions kept most of it
/// resident and the request path spread over thousands of pages. Each function is placed on its
/// own when everything is compiled with `-Xswiftc -Xfrontend -Xswiftc -function-sections` (the
/// Dockerfile and `Tools/` build so; see `SITREP_RELEASE_BUILD` in Tools/lib/bench.sh);
/// without it only the Swift runtime's and standard library's are. A name the linker no longer
/// finds is skipped. docs/performance.md, eighteenth round, has the figures.
let codeLayout: [LinkerSetting] = [
    .unsafeFlags(
        [
            "-use-ld=lld",
            "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Tools/layout/sitrep.order",
            "-Xlinker", "--no-warn-symbol-ordering",
            "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
        ],
        .when(platforms: [.linux], configuration: .release))
]

let package = Package(
    name: "sitrep",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sitrep", targets: ["sitrep"])
    ],
    dependencies: [
        .package(url: "https://github.com/mattpolzin/OpenAPIKit", exact: "6.4.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // TLS for Redis (`rediss://`): already in the graph through async-http-client.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        // Only the OTLP/HTTP exporter: the default traits would also build gRPC.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // MARK: the generator (load → check → model → render) and its plugin
        .target(
            name: "GeneratorCore",
            dependencies: [
                .product(name: "OpenAPIKit", package: "OpenAPIKit"),
                .product(name: "Yams", package: "Yams"),
            ],
            path: "Tools/Generator"
        ),
        .executableTarget(
            name: "sitrep-gen",
            dependencies: ["GeneratorCore"],
            path: "Tools/sitrep-gen"
        ),
        .plugin(
            name: "SitrepGeneratorPlugin",
            capability: .buildTool(),
            dependencies: ["sitrep-gen"],
            path: "Plugins/SitrepGeneratorPlugin"
        ),

        // MARK: runtime the generated code stands on
        .target(
            name: "SitrepRuntime",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ]
        ),
        .target(
            name: "Generated",
            dependencies: [
                "SitrepRuntime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            plugins: ["SitrepGeneratorPlugin"]
        ),

        // MARK: real parts
        .systemLibrary(
            name: "CHiredis",
            path: "Sources/CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        // glibc's malloc.h (malloc_trim), for handing freed memory back to the OS.
        .systemLibrary(name: "CMalloc", path: "Sources/CMalloc"),
        .target(
            name: "Redis",
            dependencies: [
                "CHiredis",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Storage",
            dependencies: [
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "Auth",
            dependencies: [
                "HTTPTracing",
                "SitrepRuntime",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Pango + Cairo from Debian, for PDF export with Arabic and English text shaped correctly.
        .systemLibrary(
            name: "CPangoCairo",
            path: "Sources/CPangoCairo",
            pkgConfig: "pangocairo",
            providers: [.apt(["libpango1.0-dev", "libcairo2-dev"])]
        ),
        // Renders an approved briefing as a PDF (bilingual, page numbers, content hash).
        .target(
            name: "BriefingPDF",
            dependencies: ["CPangoCairo"]
        ),
        // A local OpenID Connect provider (discovery, JWKS, authorize, token) for development and
        // tests: the same code path as Azure AD, only the issuer URL differs.
        .target(
            name: "LocalIssuer",
            dependencies: [
                "Auth", "SitrepRuntime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // Outbound HTTP calls in OpenTelemetry client spans, W3C trace context in their headers.
        .target(
            name: "HTTPTracing",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ]
        ),
        // Outbound messaging: Twilio Messages (WhatsApp, SMS) and SendGrid mail send over
        // async-http-client, and Twilio's request signatures.
        .target(
            name: "Twilio",
            dependencies: [
                "HTTPTracing",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // A local stand-in for Twilio and SendGrid with scripted behaviours, for development
        // (`Tools/run`) and tests; refused in production.
        .target(
            name: "ProviderStandIn",
            dependencies: [
                "Twilio", "SitrepRuntime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // MARK: typed clients of other systems' contracts (api/erp.yaml)
        // The transport generated clients call: timeouts, retries with backoff, a circuit breaker,
        // one typed error (APIClientError) and its mapping to Sitrep's problems.
        .target(
            name: "SitrepClientRuntime",
            dependencies: [
                "HTTPTracing",
                "SitrepRuntime",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The ERP's typed client, generated at build time from api/erp.yaml by the plugin.
        .target(
            name: "ERPClient",
            dependencies: ["SitrepClientRuntime", "SitrepRuntime"],
            plugins: ["SitrepGeneratorPlugin"]
        ),
        // A local ERP serving api/erp.yaml over seeded data, with fault injection, for development
        // and tests; refused in production.
        .target(
            name: "ERPStandIn",
            dependencies: [
                "ERPClient", "SitrepRuntime",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // The dispatch worker: claims due deliveries and walks them through WhatsApp → SMS →
        // e-mail, crash-safe (attempts recorded before each call, reconciled after a crash).
        .target(
            name: "DeliveryWorker",
            dependencies: [
                "SitrepRuntime", "Storage", "Twilio", "BriefingPDF",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The pure core of the treasury CSV upload: a streaming RFC 4180 parser, exact decimals,
        // and the row validator.
        .target(name: "Treasury", dependencies: []),
        .target(
            name: "Handlers",
            dependencies: [
                "Generated", "SitrepRuntime", "Storage", "Redis", "Auth", "BriefingPDF", "Twilio", "DeliveryWorker", "Treasury", "ERPClient",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "sitrep",
            dependencies: [
                "Handlers", "Generated", "SitrepRuntime", "Storage", "Redis", "Auth", "LocalIssuer", "Twilio", "DeliveryWorker", "HTTPTracing",
                "ProviderStandIn", "CMalloc", "ERPClient", "ERPStandIn", "GeneratorCore",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            ],
            linkerSettings: codeLayout
        ),
        // The bare-Hummingbird side of Tools/bench's A/B (fixed bytes, nothing generated).
        .executableTarget(
            name: "sitrep-bench-bare",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Tools/bench-bare",
            // Laid out as `sitrep` is (the same list: its HTTP stack's functions are in it), so the
            // A/B compares the generated code, not two layouts.
            linkerSettings: codeLayout
        ),

        // MARK: tests
        .testTarget(
            name: "GeneratorTests",
            dependencies: ["GeneratorCore"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(
            name: "RuntimeTests",
            dependencies: [
                "SitrepRuntime", "Generated", "GeneratorCore",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .testTarget(
            name: "SitrepTests",
            dependencies: [
                "Handlers", "Generated", "SitrepRuntime", "Storage", "Redis", "Auth", "LocalIssuer", "BriefingPDF", "Twilio",
                "ProviderStandIn", "DeliveryWorker", "Treasury", "SitrepClientRuntime", "ERPClient", "ERPStandIn",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ]
)
