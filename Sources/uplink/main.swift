import UplinkCLI
UplinkCommand.main()
