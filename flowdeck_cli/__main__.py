from flowdeck_cli.main import main

main()
