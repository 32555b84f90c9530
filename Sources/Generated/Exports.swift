@_exported import SitrepRuntime
