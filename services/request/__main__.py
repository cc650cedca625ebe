from services.request.settings import RequestSettings
from shared.web.serve import serve

serve("services.request.app:app", RequestSettings())
