import JWTKit
import AsyncHTTPClient
