from epg.server import main

main()
