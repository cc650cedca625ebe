from services.delivery.settings import DeliverySettings
from shared.web.serve import serve

serve("services.delivery.app:app", DeliverySettings())
