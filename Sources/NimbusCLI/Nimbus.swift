import ArgumentParser

@main
struct Nimbus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nimbus",
        abstract: "An OpenStack-compatible cloud in one binary.",
        subcommands: [Up.self, Serve.self, DB.self, TokenKeys.self, GuestImageCommand.self, Bench.self, NetworkCleanup.self])
}
