import PackagePlugin

/// Runs `sitrep-gen` at build time and hands the Swift it writes to the target, chosen by the
/// target's name:
/// - `Generated`: the server side of `api/openapi.yaml` (`sitrep-gen generate`);
/// - `ERPClient`: the typed client of `api/erp.yaml` (`sitrep-gen client --name ERPClient`).
///
/// SwiftPM re-runs it only when the spec or the generator changes, so a one-line spec edit
/// rebuilds in seconds.
@main
struct SitrepGeneratorPlugin: BuildToolPlugin {
    /// Client targets: target name → the client contract it is generated from. The generated
    /// client type is named after the target.
    static let clients = ["ERPClient": "api/erp.yaml"]

    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL
        let tool = try context.tool(named: "sitrep-gen").url
        if let contract = Self.clients[target.name] {
            let spec = context.package.directoryURL.appending(path: contract)
            let files = ["Types.swift", "Client.swift"]
            return [
                .buildCommand(
                    displayName: "Generating \(target.name) from \(contract)",
                    executable: tool,
                    arguments: ["client", spec.path(), "--name", target.name, "--output", output.path()],
                    inputFiles: [spec],
                    outputFiles: files.map { output.appending(path: $0) }
                )
            ]
        }
        let spec = context.package.directoryURL.appending(path: "api/openapi.yaml")
        let files = ["Types.swift", "Operations.swift", "Protocols.swift", "Router.swift", "Spec.swift"]
        return [
            .buildCommand(
                displayName: "Generating Sitrep API from api/openapi.yaml",
                executable: tool,
                arguments: ["generate", spec.path(), "--output", output.path()],
                inputFiles: [spec],
                outputFiles: files.map { output.appending(path: $0) }
            )
        ]
    }
}
