import PackagePlugin

/// Runs `sitrep-gen` over `api/openapi.yaml` and hands the Swift it writes to
/// the `Generated` target. SwiftPM re-runs it only when the spec or the
/// generator changes, so a one-line spec edit rebuilds in seconds.
@main
struct SitrepGeneratorPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let spec = context.package.directoryURL.appending(path: "api/openapi.yaml")
        let output = context.pluginWorkDirectoryURL
        let files = ["Types.swift", "Operations.swift", "Protocols.swift", "Router.swift", "Spec.swift"]
        return [
            .buildCommand(
                displayName: "Generating Sitrep API from api/openapi.yaml",
                executable: try context.tool(named: "sitrep-gen").url,
                arguments: ["generate", spec.path(), "--output", output.path()],
                inputFiles: [spec],
                outputFiles: files.map { output.appending(path: $0) }
            )
        ]
    }
}
