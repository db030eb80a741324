{{/*
The test-data server's objects (docs/charts.md): the ConfigMap of its samples, a Deployment of
`tekscore channel test-data` from the platform image, and its Service on port 8080, all named
`<fullname>-test-data`. Named templates the umbrella renders with its own values (image, labels,
pull secrets) when `test-data.enabled`; this sub-chart's values are `.Values "test-data"` there.
*/}}
{{- define "test-data.name" -}}
{{- printf "%s-test-data" (include "tekscore.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "test-data.url" -}}
{{- printf "http://%s.%s.svc:8080" (include "test-data.name" .) .Release.Namespace }}
{{- end }}

{{- define "test-data.objects" -}}
{{- $values := index .Values "test-data" }}
{{- $name := include "test-data.name" . }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tekscore.labels" . | nindent 4 }}
    app.kubernetes.io/component: test-data
data:
  {{- range $sample, $text := $values.samples }}
  {{ $sample }}: {{ $text | quote }}
  {{- end }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tekscore.labels" . | nindent 4 }}
    app.kubernetes.io/component: test-data
spec:
  replicas: 1
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      {{- include "tekscore.selectorLabels" . | nindent 6 }}
      app.kubernetes.io/component: test-data
  template:
    metadata:
      labels:
        {{- include "tekscore.labels" . | nindent 8 }}
        app.kubernetes.io/component: test-data
      annotations:
        checksum/samples: {{ toJson $values.samples | sha256sum }}
    spec:
      automountServiceAccountToken: false
      enableServiceLinks: false
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- range . }}
        - name: {{ . | quote }}
        {{- end }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: test-data
          image: {{ include "tekscore.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args:
            - channel
            - test-data
            - --samples
            - /etc/tekscore-test-data
            - --host
            - 0.0.0.0
            - --port
            - "8080"
            - --max-bytes
            - {{ $values.maxBytes | int64 | quote }}
          env:
            - name: TEKSCORE_HOME
              value: /tmp/tekscore
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          readinessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 5
            timeoutSeconds: 3
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 10
            timeoutSeconds: 3
          {{- with $values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            capabilities:
              drop: ["ALL"]
          volumeMounts:
            - name: samples
              mountPath: /etc/tekscore-test-data
              readOnly: true
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: samples
          configMap:
            name: {{ $name }}
        - name: tmp
          emptyDir: {}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tekscore.labels" . | nindent 4 }}
    app.kubernetes.io/component: test-data
spec:
  type: ClusterIP
  selector:
    {{- include "tekscore.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/component: test-data
  ports:
    - name: http
      port: 8080
      targetPort: http
      protocol: TCP
{{- end }}
