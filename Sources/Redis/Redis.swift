import CHiredis
import NIOPosix
