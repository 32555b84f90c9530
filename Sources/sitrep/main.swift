import ArgumentParser
import ServiceLifecycle
import Handlers
import Auth
print("x")
