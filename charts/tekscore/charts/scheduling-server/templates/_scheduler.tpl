{{/*
The scheduling server of the tekscore platform (docs/charts.md): its globals ConfigMap,
Deployment, Service, ServiceAccount and RBAC, as named templates. The umbrella chart renders
them with its own values and names (templates/deployment.yaml, ...) when
`scheduling-server.enabled`, so an installed platform keeps its object names, labels and
selectors (a Deployment's selector cannot change) and its values keep their places.
*/}}

{{- define "scheduling-server.globals" -}}
{{- /* The server's global parameters (the values file's `global` section), passed as --globals. */}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ printf "%s-globals" (include "tekscore.fullname" .) | trunc 63 | trimSuffix "-" }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tekscore.labels" . | nindent 4 }}
    app.kubernetes.io/component: scheduler
data:
  globals.yaml: |
    namespace: {{ include "tekscore.jobsNamespace" . | quote }}
    callbackUrl: {{ include "tekscore.callbackUrl" . | quote }}
    image:
      registry: {{ .Values.image.registry | quote }}
      repository: {{ .Values.image.repository | quote }}
      tag: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
      pullPolicy: {{ .Values.image.pullPolicy | quote }}
    imagePullSecrets: {{ .Values.imagePullSecrets | toJson }}
    logLevel: {{ .Values.globals.logLevel | quote }}
    logFormat: {{ .Values.globals.logFormat | quote }}
    tracing:
      enabled: {{ .Values.globals.tracing.enabled }}
      {{- with .Values.globals.tracing.endpoint }}
      endpoint: {{ . | quote }}
      {{- end }}
    {{- with .Values.globals.gitServer }}
    gitServer: {{ . | quote }}
    {{- end }}
    {{- /* Without `runtimes` the scheduler serves the python runtime only: written as soon as
    another scoring server is enabled (or the python one is not). */}}
    {{- $runtimes := include "tekscore.runtimes" . | fromJson }}
    {{- if ne (keys $runtimes | sortAlpha | join ",") "python" }}
    runtimes:
      {{- /* python first: a service's runtime is the first, in this order, serving its models */}}
      {{- range $name := concat (list "python") (without (keys $runtimes | sortAlpha) "python") }}
      {{- with get $runtimes $name }}
      {{ $name }}: {{ toJson . }}
      {{- end }}
      {{- end }}
    {{- end }}
{{- end }}

{{- define "scheduling-server.deployment" -}}
{{- /* The scheduling server: `tekscore serve --backend tekton`. */}}
{{- $globals := printf "%s-globals" (include "tekscore.fullname" .) | trunc 63 | trimSuffix "-" }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "tekscore.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tekscore.labels" . | nindent 4 }}
    app.kubernetes.io/component: scheduler
spec:
  replicas: {{ .Values.replicaCount }}
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      {{- include "tekscore.selectorLabels" . | nindent 6 }}
      app.kubernetes.io/component: scheduler
  template:
    metadata:
      labels:
        {{- include "tekscore.labels" . | nindent 8 }}
        app.kubernetes.io/component: scheduler
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/globals: {{ printf "%s\n" (include "scheduling-server.globals" .) | sha256sum }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "tekscore.serviceAccountName" . }}
      automountServiceAccountToken: true
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
        - name: scheduler
          image: {{ include "tekscore.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args:
            - serve
            - --host
            - 0.0.0.0
            - --port
            - "8000"
            - --backend
            - tekton
            - --globals
            - /etc/tekscore/globals.yaml
          env:
            - name: TEKSCORE_API_TOKENS
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.auth.existingSecret | quote }}
                  key: api-tokens
            - name: TEKSCORE_SECRET
              valueFrom:
                secretKeyRef:
                  name: {{ .Values.auth.existingSecret | quote }}
                  key: callback-secret
            - name: TEKSCORE_NAMESPACE
              value: {{ include "tekscore.jobsNamespace" . | quote }}
            - name: TEKSCORE_TASK_SERVICE_ACCOUNT
              value: {{ .Values.taskServiceAccount.name | quote }}
            - name: TEKSCORE_PIPELINE
              value: tekscore-scoring-job
            - name: TEKSCORE_PIPELINE_TIMEOUT
              value: {{ .Values.timeouts.pipeline | quote }}
            - name: TEKSCORE_FINALLY_TIMEOUT
              value: {{ .Values.timeouts.finally | quote }}
            # the PipelineRuns' scheduler-url param: where the tasks reach this server
            - name: TEKSCORE_PUBLIC_URL
              value: {{ include "tekscore.callbackUrl" . | quote }}
            - name: TEKSCORE_LOG_LEVEL
              value: {{ .Values.logLevel | quote }}
            - name: TEKSCORE_HOME
              value: /tmp/tekscore
            {{- if (index .Values "data-channel").enabled }}
            - name: TEKSCORE_CHANNELS
              value: /etc/tekscore-channels
            {{- end }}
          ports:
            - name: http
              containerPort: 8000
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 3
          {{- with .Values.resources }}
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
            - name: globals
              mountPath: /etc/tekscore
              readOnly: true
            - name: tmp
              mountPath: /tmp
            {{- if (index .Values "data-channel").enabled }}
            - name: channels
              mountPath: /etc/tekscore-channels
              readOnly: true
            {{- end }}
      volumes:
        - name: globals
          configMap:
            name: {{ $globals }}
        {{- if (index .Values "data-channel").enabled }}
        - name: channels
          configMap:
            name: {{ printf "%s-channels" .Release.Name | trunc 63 | trimSuffix "-" }}
        {{- end }}
        - name: tmp
          emptyDir: {}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{- define "scheduling-server.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "tekscore.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tekscore.labels" . | nindent 4 }}
    app.kubernetes.io/component: scheduler
spec:
  type: {{ .Values.service.type }}
  selector:
    {{- include "tekscore.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/component: scheduler
  ports:
    - name: http
      port: {{ .Values.service.port }}
      targetPort: http
      protocol: TCP
{{- end }}

{{- define "scheduling-server.serviceAccount" -}}
{{- if .Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "tekscore.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "tekscore.labels" . | nindent 4 }}
    app.kubernetes.io/component: scheduler
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: true
{{- end }}
{{- end }}

{{- define "scheduling-server.rbac" -}}
{{- /* Scheduler RBAC: a Role in its namespace (and one in jobsNamespace when different), or one ClusterRole. */}}
{{- if .Values.rbac.create }}
{{- $name := include "tekscore.fullname" . }}
{{- $sa := include "tekscore.serviceAccountName" . }}
{{- if .Values.rbac.clusterWide }}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ printf "%s-scheduler" $name | trunc 63 | trimSuffix "-" }}
  labels:
    {{- include "tekscore.labels" . | nindent 4 }}
    app.kubernetes.io/component: scheduler
rules:
  {{- include "tekscore.schedulerRules" . | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ printf "%s-scheduler" $name | trunc 63 | trimSuffix "-" }}
  labels:
    {{- include "tekscore.labels" . | nindent 4 }}
    app.kubernetes.io/component: scheduler
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ printf "%s-scheduler" $name | trunc 63 | trimSuffix "-" }}
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ .Release.Namespace }}
{{- else }}
{{- range $ns := list .Release.Namespace (include "tekscore.jobsNamespace" .) | uniq }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ printf "%s-scheduler" $name | trunc 63 | trimSuffix "-" }}
  namespace: {{ $ns }}
  labels:
    {{- include "tekscore.labels" $ | nindent 4 }}
    app.kubernetes.io/component: scheduler
rules:
  {{- include "tekscore.schedulerRules" $ | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ printf "%s-scheduler" $name | trunc 63 | trimSuffix "-" }}
  namespace: {{ $ns }}
  labels:
    {{- include "tekscore.labels" $ | nindent 4 }}
    app.kubernetes.io/component: scheduler
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ printf "%s-scheduler" $name | trunc 63 | trimSuffix "-" }}
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ $.Release.Namespace }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
What the scheduler may do: run PipelineRuns, cancel TaskRuns, keep the IR ConfigMaps and the
per-job callback Secrets (created with the PipelineRun, owned by it).
*/}}
{{- define "tekscore.schedulerRules" -}}
- apiGroups: ["tekton.dev"]
  resources: ["pipelineruns"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["tekton.dev"]
  resources: ["taskruns"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch", "delete"]
{{- end }}
