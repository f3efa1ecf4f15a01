from weavenn_cli.app import main

main()
