import Foundation
import Instrumentation
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// Distributed tracing with swift-otel, configured by the standard `OTEL_*` variables. Only
/// tracing: logs stay JSON lines on standard output and metrics stay Prometheus' `/metrics`.
///
/// swift-otel's own default is to export traces over OTLP/HTTP to `localhost:4318` whenever it
/// is bootstrapped. Sitrep bootstraps it only when the environment asks for traces, so an
/// unconfigured instance (tests, `Tools/run`) pays nothing: a tracer is made when
/// `OTEL_TRACES_EXPORTER` names an exporter other than `none`, or an OTLP endpoint is set
/// (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), and
/// `OTEL_SDK_DISABLED` is not `true`. Everything else (protocol, headers, service name,
/// resource attributes, sampler, batch processor, propagators) is swift-otel's reading of the
/// variables.
enum OpenTelemetry {
    /// Whether `environment` asks for traces (see above).
    static func tracingRequested(_ environment: [String: String]) -> Bool {
        func value(_ key: String) -> String? {
            guard let v = environment[key]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        if value("OTEL_SDK_DISABLED")?.lowercased() == "true" { return false }
        if let exporter = value("OTEL_TRACES_EXPORTER") { return exporter.lowercased() != "none" }
        return value("OTEL_EXPORTER_OTLP_ENDPOINT") != nil || value("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != nil
    }

    /// When the environment asks for traces: bootstraps the process' `InstrumentationSystem` with
    /// swift-otel's tracer and returns it with the service that exports its spans (run it in the
    /// service group, listed first so it stops last and flushes what the others ended). nil
    /// otherwise, and nothing is bootstrapped.
    static func bootstrapTracing(
        serviceName: String, environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger
    ) throws -> (tracer: any Tracer, service: any Service)? {
        guard tracingRequested(environment) else { return nil }
        // swift-otel stops the process on gRPC without its trait, and has no console, Jaeger or
        // Zipkin span exporter: refuse those here, with the variable's name.
        if let exporter = environment["OTEL_TRACES_EXPORTER"], !["otlp", ""].contains(exporter.lowercased()) {
            throw Unsupported("OTEL_TRACES_EXPORTER=\(exporter) is not supported: use otlp (or none to turn tracing off)")
        }
        for key in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let value = environment[key], !["http/protobuf", "http/json", ""].contains(value.lowercased()) {
                throw Unsupported("\(key)=\(value) is not supported: use http/protobuf or http/json (OTLP/gRPC is not built in)")
            }
        }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName  // OTEL_SERVICE_NAME overrides it
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.diagnosticLogger = .custom(logger)
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        InstrumentationSystem.bootstrap(backend.factory)
        logger.info("OpenTelemetry tracing on", metadata: ["service": .string(environment["OTEL_SERVICE_NAME"] ?? serviceName)])
        return (backend.factory, backend.service)
    }

    struct Unsupported: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
