import ArgumentParser
import Foundation
import GeneratorCore

/// `sitrep contract …`: the contract gates from the generator, for operators and CI.
struct Contract: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Contract gates: compare two versions of the contract.", subcommands: [Diff.self])

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "What changed for clients between two contracts; exit 1 on a breaking change without a new major info.version.",
            discussion:
                "One line per finding (BREAKING|ok rule location: message), e.g. sitrep contract diff api/released/openapi-1.0.0.yaml api/openapi.yaml"
        )

        @Argument(help: "The released contract.")
        var old: String

        @Argument(help: "The new contract.")
        var new: String

        func run() throws {
            let code = ContractDiff.runCommand(oldPath: old, newPath: new)
            if code != 0 { throw ExitCode(code) }
        }
    }
}
