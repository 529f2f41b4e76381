from runbook.cli.main import main

main()
