; installers/windows/hooks.nsh — hooks for Tauri's NSIS installer (tauri.conf.json
; bundle.windows.nsis.installerHooks). "Start BucketFTP when I log in" is a value named
; after the product ("BucketFTP") under HKCU's Run key, written by tauri-plugin-autostart
; (auto-launch crate), plus Task Manager's StartupApproved entry. Uninstalling removes both,
; so no dead start-up entry is left behind; an update ($UpdateMode = 1: the new installer runs
; the old uninstaller) keeps them, the exe path does not change.
!macro NSIS_HOOK_POSTUNINSTALL
  ${If} $UpdateMode <> 1
    DeleteRegValue HKCU "Software\Microsoft\Windows\CurrentVersion\Run" "BucketFTP"
    DeleteRegValue HKCU "Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run" "BucketFTP"
  ${EndIf}
!macroend
