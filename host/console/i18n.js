// Console texts, Japanese first. `t(key, ...args)` fills {0}, {1}… in order.

const TEXTS = {
  ja: {
    title: "コンソール", skip: "本文へ移動", otherLanguage: "English", signOut: "サインアウト",
    signIn: "サインイン", token: "アクセストークン (JWT)", badToken: "トークンとして読めません。JWT 全体を貼り付けてください。",
    signInHelp: "API と同じ JWT を貼り付けてください。運用者は `nukisashi token mint --role admin --lg-code 131016` などで発行できます。",
    sessionExpired: "トークンが無効か期限切れです。もう一度サインインしてください。",
    loading: "読み込み中…", failed: "失敗しました", page_municipality: "自治体", page_operator: "運用", page_vendor: "ベンダー", page_signin: "サインイン",
    role_operator: "運用者", role_vendor: "ベンダー", role_admin: "自治体管理者", role_staff: "自治体職員", role_resident: "住民",
    municipalityTitle: "自治体の管理画面", subscriptions: "利用中のサービス", noSubscriptions: "利用中のサービスはまだありません。",
    providersTitle: "標準インターフェースの提供元（連携）", provider: "提供元", extensionItems: "拡張項目", choose: "切り替える",
    chooseProvider: "{0}の提供元", platformData: "基盤のデータ", noProvider: "なし（利用不可）", noExtensionItems: "拡張項目なし", noCandidates: "提供できるサービスを利用していません",
    providerChosen: "{0}の提供元を {1} にしました。",
    noticesTitle: "他の自治体からの通知", noticeKind: "通知の種類", acceptedInto: "受け取るサービス", acceptInto: "{0}を受け取るサービス", notAccepted: "受け付けていません",
    accept: "受け付ける", stopAccepting: "受付をやめる", noNoticeKinds: "通知を受け取れるサービスを利用していません。", noticesAccepted: "{0}を受け付けます。", noticesRefused: "{0}の受付をやめました。",
    module: "モジュール", version: "バージョン", versions: "バージョン", grants: "許可した権限", pinned: "固定", open: "開く",
    exportData: "データを書き出す", exported: "{0} のデータを書き出しました。", unsubscribe: "利用をやめる",
    confirmUnsubscribe: "{0} の利用をやめますか？ データは残り、あとで書き出せます。", unsubscribed: "{0} の利用をやめました。",
    catalog: "サービスカタログ", category: "分野", allCategories: "すべて", search: "検索", noMatch: "条件に合うサービスはありません。",
    vendor: "提供", capabilities: "権限", grantLegend: "このサービスに許可する権限（必要なものだけを選んでください）", noCapabilities: "権限を必要としません。",
    configLegend: "設定", latest: "最新に追従 ({0})", pinTo: "{0} に固定", subscribe: "利用を始める", update: "変更を保存",
    subscribeSummary: "利用を始める…", changeSubscription: "権限・設定・バージョンを変更…", inUse: "利用中 ({0})",
    subscribed: "{0} の利用を始めました（バージョン {1}）。", usageTitle: "{0} の利用量", noUsage: "今月の利用はまだありません。",
    requests: "リクエスト", errors: "エラー", cpuMs: "CPU 時間 (ms)", peakMemory: "最大メモリ (MiB)", storage: "保存データ: {0} KiB",
    auditTitle: "個人情報の参照記録（新しい順 50 件）", noAudit: "参照記録はありません。", when: "日時", interface: "インターフェース", records: "宛名番号", caller: "利用者",
    operatorTitle: "運用", reviewQueue: "審査待ち", noReviews: "審査待ちのバージョンはありません。", reason: "理由", approve: "承認", reject: "却下",
    approved: "{0} {1} を承認しました。", rejected: "{0} {1} を却下しました。", liveModules: "モジュールとバージョン", noModules: "カタログにモジュールはありません。",
    servingVersions: "提供中のバージョン", allMunicipalities: "全自治体", municipalitiesCount: "自治体", swapTo: "切替先バージョン", swap: "切り替え",
    swapped: "{0} を {1} に切り替えました（{2} µs）。", rollback: "ロールバック", rolledBack: "{0} を前のバージョンに戻しました（{1} µs）。",
    suspend: "停止", resume: "再開", resumed: "{0} を再開しました。", stagedLabel: "対象自治体", stagedCodes: "空欄なら全自治体 (例: 131016, 011002)", errorsTitle: "{0} のモジュール別エラー", suspendReason: "{0} を停止する理由", suspended: "{0} を停止しました。", health: "稼働状態",
    costTitle: "{0} の費用按分", totalCost: "総額（円）", fixedWeight: "均等割の重み", populationWeight: "人口割の重み", usageWeight: "利用割の重み",
    calculate: "計算", signInWith: "{0} でサインイン", providerRefused: "認証基盤がサインインを断りました: {0}",
    providerStateMismatch: "サインインの応答がこの画面から始めたものと一致しません。もう一度サインインしてください。", providerTokenFailed: "認証基盤からトークンを受け取れませんでした: {0}",
    publishCost: "この方針を各自治体に公開", costPublished: "{0} の費用按分の方針を公開しました。",
    ownCostTitle: "{0} の負担額", ownCost: "今月の負担額（見込み）: {0}", fixedShare: "均等割", populationShare: "人口割", usageShare: "利用割",
    ownCostBasis: "総額 {0} を {1} 団体で按分（方針の公開: {2}）。利用割は月末まで利用に応じて変わります。", noCostPolicy: "運用者はこの月の費用按分の方針をまだ公開していません。",
    municipality: "自治体", amount: "負担額", costChart: "自治体ごとの負担額",
    vendorTitle: "ベンダー", publishTitle: "新しいバージョンを公開", publishHelp: "manifest.toml、コンポーネント (.wasm)、署名ファイル (`nukisashi module sign` で作成) を選んでください。",
    manifestFile: "マニフェスト", componentFile: "コンポーネント", signatureFile: "署名", publish: "公開", uploadProgress: "アップロードの進み具合",
    published: "{0} {1} を受け付けました（状態: {2}）。", uploadFailed: "アップロードできませんでした。接続を確認してください。",
    myModules: "モジュールとバージョン", noVendorModules: "公開したモジュールはまだありません。", status: "状態", reviewReasons: "審査結果", runsIn: "稼働中の自治体",
    suspendedBecause: "停止中: {0}", status_pending: "審査待ち", status_approved: "承認済み", status_rejected: "却下",
    decision_approved: "承認", decision_rejected: "却下",
  },
  en: {
    title: "Console", skip: "Skip to content", otherLanguage: "日本語", signOut: "Sign out",
    signIn: "Sign in", token: "Access token (JWT)", badToken: "That is not a token: paste the whole JWT.",
    signInHelp: "Paste the same JWT you use with the API. An operator can mint one with e.g. `nukisashi token mint --role admin --lg-code 131016`.",
    sessionExpired: "The token is invalid or expired: sign in again.",
    loading: "Loading…", failed: "Failed", page_municipality: "Municipality", page_operator: "Operations", page_vendor: "Vendor", page_signin: "Sign in",
    role_operator: "operator", role_vendor: "vendor", role_admin: "municipal administrator", role_staff: "municipal staff", role_resident: "resident",
    municipalityTitle: "Municipality", subscriptions: "Services in use", noSubscriptions: "No services in use yet.",
    providersTitle: "Who provides the standard interfaces (linkage)", provider: "Provider", extensionItems: "Extension items", choose: "Switch",
    chooseProvider: "Provider of {0}", platformData: "The platform's data", noProvider: "None (unavailable)", noExtensionItems: "no extension items", noCandidates: "No service in use can provide it",
    providerChosen: "{0} is now provided by {1}.",
    noticesTitle: "Notices from other municipalities", noticeKind: "Kind", acceptedInto: "Taken by", acceptInto: "Service that takes {0}", notAccepted: "not accepted",
    accept: "Accept", stopAccepting: "Stop accepting", noNoticeKinds: "No service in use takes notices.", noticesAccepted: "{0} is accepted.", noticesRefused: "{0} is no longer accepted.",
    module: "Module", version: "Version", versions: "Versions", grants: "Granted", pinned: "pinned", open: "Open",
    exportData: "Export data", exported: "Exported the data of {0}.", unsubscribe: "Stop using",
    confirmUnsubscribe: "Stop using {0}? Its data stays and can be exported later.", unsubscribed: "Stopped using {0}.",
    catalog: "Service catalog", category: "Category", allCategories: "All", search: "Search", noMatch: "No service matches.",
    vendor: "Vendor", capabilities: "Capabilities", grantLegend: "Capabilities you grant this service (only what it needs)", noCapabilities: "Needs no capability.",
    configLegend: "Settings", latest: "Follow the latest ({0})", pinTo: "Pin to {0}", subscribe: "Start using", update: "Save changes",
    subscribeSummary: "Start using…", changeSubscription: "Change grants, settings or version…", inUse: "In use ({0})",
    subscribed: "Now using {0} (version {1}).", usageTitle: "Usage in {0}", noUsage: "No usage this month yet.",
    requests: "Requests", errors: "Errors", cpuMs: "CPU time (ms)", peakMemory: "Peak memory (MiB)", storage: "Stored data: {0} KiB",
    auditTitle: "Reads of personal data (latest 50)", noAudit: "No reads recorded.", when: "When", interface: "Interface", records: "Addressee numbers", caller: "Caller",
    operatorTitle: "Operations", reviewQueue: "Review queue", noReviews: "Nothing waits for review.", reason: "Reason", approve: "Approve", reject: "Reject",
    approved: "Approved {0} {1}.", rejected: "Rejected {0} {1}.", liveModules: "Modules and versions", noModules: "No module in the catalog.",
    servingVersions: "Serving versions", allMunicipalities: "all municipalities", municipalitiesCount: "municipalities", swapTo: "Swap to version", swap: "Swap",
    swapped: "Swapped {0} to {1} ({2} µs).", rollback: "Roll back", rolledBack: "Rolled {0} back to the previous version ({1} µs).",
    suspend: "Suspend", resume: "Resume", resumed: "Resumed {0}.", stagedLabel: "Municipalities", stagedCodes: "empty for all (e.g. 131016, 011002)", errorsTitle: "Errors by module in {0}", suspendReason: "Why suspend {0}?", suspended: "Suspended {0}.", health: "Health",
    costTitle: "Cost allocation for {0}", totalCost: "Total (yen)", fixedWeight: "Fixed share weight", populationWeight: "Population weight", usageWeight: "Usage weight",
    calculate: "Calculate", signInWith: "Sign in with {0}", providerRefused: "The identity provider refused the sign-in: {0}",
    providerStateMismatch: "The sign-in answer does not match one started here. Please sign in again.", providerTokenFailed: "Could not get a token from the identity provider: {0}",
    publishCost: "Publish this policy to municipalities", costPublished: "Published the cost policy for {0}.",
    ownCostTitle: "Your cost for {0}", ownCost: "This month's amount so far: {0}", fixedShare: "Fixed share", populationShare: "Population share", usageShare: "Usage share",
    ownCostBasis: "{0} split among {1} municipalities (policy published {2}). The usage share follows usage until the month ends.", noCostPolicy: "The operator has not published the cost policy for this month yet.",
    municipality: "Municipality", amount: "Amount", costChart: "Amount per municipality",
    vendorTitle: "Vendor", publishTitle: "Publish a new version", publishHelp: "Choose manifest.toml, the component (.wasm) and the signature file (made with `nukisashi module sign`).",
    manifestFile: "Manifest", componentFile: "Component", signatureFile: "Signature", publish: "Publish", uploadProgress: "Upload progress",
    published: "Received {0} {1} (status: {2}).", uploadFailed: "The upload failed: check the connection.",
    myModules: "Modules and versions", noVendorModules: "No module published yet.", status: "Status", reviewReasons: "Review", runsIn: "Running in",
    suspendedBecause: "suspended: {0}", status_pending: "pending review", status_approved: "approved", status_rejected: "rejected",
    decision_approved: "approved", decision_rejected: "rejected",
  },
};

const LANG_KEY = "nukisashi.lang";

export function lang() {
  const chosen = localStorage.getItem(LANG_KEY);
  return chosen === "en" ? "en" : "ja";
}

export function setLang(value) {
  localStorage.setItem(LANG_KEY, value);
}

export function t(key, ...args) {
  const text = TEXTS[lang()][key] ?? TEXTS.ja[key] ?? key;
  return text.replace(/\{(\d)\}/g, (_, i) => String(args[Number(i)] ?? ""));
}
