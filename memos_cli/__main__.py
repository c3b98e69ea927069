from memos_cli.cli.app import main

main()
