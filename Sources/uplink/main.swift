import UplinkCLI

// The root command is async (`uplink serve` runs a server); its async `main` parses and runs
// any subcommand.
await UplinkCLI.runUplink()
