{{/* Names and labels. */}}
{{- define "aidline.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "aidline.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* One service's selector labels; context: dict root name. */}}
{{- define "aidline.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* A service's settings: the defaults overlaid with its own entry; context: dict root name. */}}
{{- define "aidline.service" -}}
{{- $own := index .root.Values.services .name -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.defaults) (deepCopy $own)) -}}
{{- end -}}

{{- define "aidline.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Restricted pod security: non-root, no privilege escalation, no capabilities. */}}
{{- define "aidline.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001  # the image's `aidline` user
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "aidline.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The one JWT key source the values name; fails on none or several. */}}
{{- define "aidline.jwtSource" -}}
{{- $jwt := .Values.jwt -}}
{{- $set := list -}}
{{- if $jwt.secret.existingSecret }}{{ $set = append $set "secret" }}{{ end -}}
{{- if $jwt.publicKey.existingSecret }}{{ $set = append $set "publicKey" }}{{ end -}}
{{- if $jwt.jwks.existingSecret }}{{ $set = append $set "jwks" }}{{ end -}}
{{- if $jwt.jwksUrl }}{{ $set = append $set "jwksUrl" }}{{ end -}}
{{- if ne (len $set) 1 -}}
{{- fail (printf "set exactly one of jwt.secret.existingSecret, jwt.publicKey.existingSecret, jwt.jwks.existingSecret, jwt.jwksUrl (set: %v)" $set) -}}
{{- end -}}
{{- first $set -}}
{{- end -}}

{{/* The database: what the migration Job and every service need. Secrets are only ever
referenced (secretKeyRef), never copied into the manifest. */}}
{{- define "aidline.databaseEnv" -}}
{{- $v := .Values -}}
{{- if not $v.database.existingSecret }}{{ fail "database.existingSecret is required" }}{{ end -}}
- name: LOG_LEVEL
  value: {{ $v.logLevel | quote }}
- name: LOG_FORMAT
  value: json
{{- if $v.database.urlKey }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ $v.database.existingSecret | quote }}, key: {{ $v.database.urlKey | quote }}}
{{- else }}
{{- if not $v.database.host }}{{ fail "database.host is required (or database.urlKey)" }}{{ end }}
- name: DATABASE_USER
  valueFrom:
    secretKeyRef: {name: {{ $v.database.existingSecret | quote }}, key: {{ $v.database.usernameKey | quote }}}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $v.database.existingSecret | quote }}, key: {{ $v.database.passwordKey | quote }}}
# Kubernetes expands $(VAR) from the variables above when the container starts.
- name: DATABASE_URL
  value: {{ printf "postgresql+asyncpg://$(DATABASE_USER):$(DATABASE_PASSWORD)@%s:%v/%s" $v.database.host $v.database.port $v.database.name | quote }}
{{- end }}
{{- end -}}

{{/* A service's environment besides its port: the database, Kafka and the JWT key. */}}
{{- define "aidline.env" -}}
{{- $v := .Values -}}
{{- if not $v.kafka.bootstrapServers }}{{ fail "kafka.bootstrapServers is required" }}{{ end -}}
- name: ENVIRONMENT
  value: {{ $v.environment | quote }}
- name: MIGRATE_ON_START
  value: "false"
{{ include "aidline.databaseEnv" . }}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ $v.kafka.bootstrapServers | quote }}
- name: KAFKA_TOPIC_PARTITIONS
  value: {{ $v.kafka.topicPartitions | quote }}
- name: KAFKA_DLQ_PARTITIONS
  value: {{ $v.kafka.dlqPartitions | quote }}
- name: KAFKA_REPLICATION_FACTOR
  value: {{ $v.kafka.replicationFactor | quote }}
- name: KAFKA_MIN_INSYNC_REPLICAS
  value: {{ $v.kafka.minInsyncReplicas | quote }}
- name: KAFKA_SECURITY_PROTOCOL
  value: {{ $v.kafka.securityProtocol | quote }}
{{- if $v.kafka.tls.caSecret.name }}
- name: KAFKA_SSL_CAFILE
  value: /etc/aidline/kafka-ca/{{ $v.kafka.tls.caSecret.key }}
{{- end }}
{{- if $v.kafka.tls.clientSecret.name }}
- name: KAFKA_SSL_CERTFILE
  value: /etc/aidline/kafka-client/{{ $v.kafka.tls.clientSecret.certKey }}
- name: KAFKA_SSL_KEYFILE
  value: /etc/aidline/kafka-client/{{ $v.kafka.tls.clientSecret.keyKey }}
{{- end }}
{{- if hasPrefix "SASL_" $v.kafka.securityProtocol }}
{{- if not (and $v.kafka.sasl.username $v.kafka.sasl.passwordSecret.name) }}{{ fail "kafka.securityProtocol SASL_* needs kafka.sasl.username and kafka.sasl.passwordSecret.name" }}{{ end }}
- name: KAFKA_SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
- name: KAFKA_SASL_USERNAME
  value: {{ $v.kafka.sasl.username | quote }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $v.kafka.sasl.passwordSecret.name | quote }}, key: {{ $v.kafka.sasl.passwordSecret.key | quote }}}
{{- end }}
{{- $jwt := include "aidline.jwtSource" . }}
{{- if eq $jwt "secret" }}
- name: JWT_SECRET
  valueFrom:
    secretKeyRef: {name: {{ $v.jwt.secret.existingSecret | quote }}, key: {{ $v.jwt.secret.key | quote }}}
{{- else if eq $jwt "publicKey" }}
- name: JWT_PUBLIC_KEY_FILE
  value: /etc/aidline/jwt/{{ $v.jwt.publicKey.key }}
{{- else if eq $jwt "jwks" }}
- name: JWT_JWKS_FILE
  value: /etc/aidline/jwt/{{ $v.jwt.jwks.key }}
{{- else }}
- name: JWT_JWKS_URL
  value: {{ $v.jwt.jwksUrl | quote }}
{{- end }}
- name: JWT_ISSUER
  value: {{ $v.jwt.issuer | quote }}
- name: JWT_AUDIENCE
  value: {{ $v.jwt.audience | quote }}
{{- end -}}

{{/* The files the environment above names: Secret volumes, and /tmp (the root is read-only). */}}
{{- define "aidline.volumes" -}}
- name: tmp
  emptyDir: {sizeLimit: 256Mi}
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  secret: {secretName: {{ .Values.kafka.tls.caSecret.name | quote }}}
{{- end }}
{{- if .Values.kafka.tls.clientSecret.name }}
- name: kafka-client
  secret: {secretName: {{ .Values.kafka.tls.clientSecret.name | quote }}}
{{- end }}
{{- $jwt := include "aidline.jwtSource" . }}
{{- if eq $jwt "publicKey" }}
- name: jwt
  secret: {secretName: {{ .Values.jwt.publicKey.existingSecret | quote }}}
{{- else if eq $jwt "jwks" }}
- name: jwt
  secret: {secretName: {{ .Values.jwt.jwks.existingSecret | quote }}}
{{- end }}
{{- end -}}

{{- define "aidline.volumeMounts" -}}
- {name: tmp, mountPath: /tmp}
{{- if .Values.kafka.tls.caSecret.name }}
- {name: kafka-ca, mountPath: /etc/aidline/kafka-ca, readOnly: true}
{{- end }}
{{- if .Values.kafka.tls.clientSecret.name }}
- {name: kafka-client, mountPath: /etc/aidline/kafka-client, readOnly: true}
{{- end }}
{{- if has (include "aidline.jwtSource" .) (list "publicKey" "jwks") }}
- {name: jwt, mountPath: /etc/aidline/jwt, readOnly: true}
{{- end }}
{{- end -}}
