import ArgumentParser
import Foundation
import Logging
import SitrepRuntime

@main
struct Sitrep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sitrep",
        abstract: "Sitrep: the API behind the Data & AI Office's leadership platform.",
        discussion: "Configuration comes from SITREP_* environment variables; see the README's table.",
        subcommands: [
            Serve.self, Worker.self, Migrate.self, SeedDemo.self, DevToken.self, DevIssuerCommand.self, DevProviders.self, DevERP.self, Audit.self,
            Contract.self,
        ]
    )
}

/// Loads the configuration or exits with code 2 after one line per problem.
func loadConfiguration(needs: Configuration.Needs = .all) -> Configuration {
    do {
        return try Configuration.load(needs: needs)
    } catch {
        for line in error.lines {
            FileHandle.standardError.write(Data("sitrep: \(line)\n".utf8))
        }
        exit(2)
    }
}

func bootstrapLogging(_ config: Configuration) {
    let level = Logger.Level(rawValue: config.logLevel) ?? .info
    LoggingSystem.bootstrap(
        { label, provider in JSONLogHandler(label: label, level: level, metadataProvider: provider) },
        metadataProvider: Logger.MetadataProvider.sitrepRequest)
}

/// Prints a one-line operator error and exits with code 1 (no stack trace).
func die(_ message: String) -> Never {
    FileHandle.standardError.write(Data("sitrep: \(message)\n".utf8))
    exit(1)
}
