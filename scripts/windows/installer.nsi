; Spreadout's Windows installer, built by scripts/windows/build.sh with Debian's makensis (3.08).
;
; Why not `tauri build --bundles nsis`: Tauri's NSIS template calls its own plugin DLL
; (nsis_tauri_utils), which the bundler downloads from GitHub and checks by hash; these machines
; reach only the package registries, so the bundle would stop there. This script does what that
; bundle does for this app with NSIS's own pieces: a per-user install (no administrator prompt)
; under %LOCALAPPDATA%\Programs, Start-menu shortcuts, an entry in Apps & features, and WebView2
; (the system web view Tauri draws with) bootstrapped as Tauri does when it is missing.
;
; Defines from the build script: VERSION, DIST (the folder holding the files), OUT (the .exe).

Unicode true
SetCompressor /SOLID lzma
RequestExecutionLevel user
ManifestDPIAware true

!include "MUI2.nsh"
!include "FileFunc.nsh"
!include "x64.nsh"

!define PRODUCT "Spreadout"
!define PUBLISHER "Spreadout"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\${PRODUCT}"
; WebView2 Runtime's client id, under which Edge's updater records the installed version.
!define WEBVIEW2_GUID "{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}"
; Microsoft's link to the WebView2 bootstrapper (a small installer that fetches the runtime).
!define WEBVIEW2_BOOTSTRAPPER "https://go.microsoft.com/fwlink/p/?LinkId=2124703"

Name "${PRODUCT}"
OutFile "${OUT}"
InstallDir "$LOCALAPPDATA\Programs\${PRODUCT}"
InstallDirRegKey HKCU "${UNINSTALL_KEY}" "InstallLocation"
VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${PRODUCT}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${PRODUCT} installer"
VIAddVersionKey "CompanyName" "${PUBLISHER}"
VIAddVersionKey "LegalCopyright" "MIT OR Apache-2.0"

!define MUI_ICON "${DIST}\Spreadout.ico"
!define MUI_UNICON "${DIST}\Spreadout.ico"
!define MUI_FINISHPAGE_RUN "$INSTDIR\Spreadout.exe"
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

; NSIS's installer stub is a 32-bit program (it runs on every Windows); what it installs is 64-bit.
Function .onInit
  ${IfNot} ${RunningX64}
    MessageBox MB_ICONSTOP|MB_OK "Spreadout needs 64-bit Windows 10 or 11." /SD IDOK
    Abort
  ${EndIf}
FunctionEnd

Section "WebView2" WebView2
  ; Present for all users (64- or 32-bit registry view) or for this user alone: nothing to do.
  ReadRegStr $0 HKLM "SOFTWARE\WOW6432Node\Microsoft\EdgeUpdate\Clients\${WEBVIEW2_GUID}" "pv"
  StrCmp $0 "" 0 present
  ReadRegStr $0 HKLM "SOFTWARE\Microsoft\EdgeUpdate\Clients\${WEBVIEW2_GUID}" "pv"
  StrCmp $0 "" 0 present
  ReadRegStr $0 HKCU "SOFTWARE\Microsoft\EdgeUpdate\Clients\${WEBVIEW2_GUID}" "pv"
  StrCmp $0 "" 0 present
  DetailPrint "Downloading the WebView2 runtime's installer from Microsoft..."
  Delete "$TEMP\MicrosoftEdgeWebview2Setup.exe"
  ; curl.exe ships with Windows 10 (1803) and later; PowerShell is the fallback before that.
  nsExec::ExecToLog '"$SYSDIR\curl.exe" --fail --silent --location --output "$TEMP\MicrosoftEdgeWebview2Setup.exe" "${WEBVIEW2_BOOTSTRAPPER}"'
  Pop $1
  StrCmp $1 "0" downloaded
  nsExec::ExecToLog 'powershell.exe -NoProfile -NonInteractive -Command "Invoke-WebRequest -UseBasicParsing -Uri \"${WEBVIEW2_BOOTSTRAPPER}\" -OutFile \"$TEMP\MicrosoftEdgeWebview2Setup.exe\""'
  Pop $1
  StrCmp $1 "0" downloaded
  MessageBox MB_ICONSTOP|MB_OK "Spreadout needs Microsoft's WebView2 runtime, which is not installed, and its installer could not be downloaded. Connect to the internet and run this installer again, or install WebView2 from https://developer.microsoft.com/microsoft-edge/webview2/." /SD IDOK
  Abort "WebView2 could not be downloaded"
  downloaded:
  DetailPrint "Installing the WebView2 runtime..."
  ExecWait '"$TEMP\MicrosoftEdgeWebview2Setup.exe" /silent /install' $1
  Delete "$TEMP\MicrosoftEdgeWebview2Setup.exe"
  StrCmp $1 "0" present
  MessageBox MB_ICONSTOP|MB_OK "The WebView2 runtime's installer failed (exit code $1). Install WebView2 from https://developer.microsoft.com/microsoft-edge/webview2/ and run this installer again." /SD IDOK
  Abort "WebView2 could not be installed"
  present:
SectionEnd

Section "Spreadout" Main
  SectionIn RO
  SetOutPath "$INSTDIR"
  File "${DIST}\Spreadout.exe"
  File "${DIST}\WebView2Loader.dll"
  File "${DIST}\Spreadout.ico"
  ; The command-line tool in its own folder: `spreadout.exe` and `Spreadout.exe` are one name
  ; on Windows' case-insensitive file systems.
  SetOutPath "$INSTDIR\bin"
  File "${DIST}\bin\spreadout.exe"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateDirectory "$SMPROGRAMS\${PRODUCT}"
  CreateShortcut "$SMPROGRAMS\${PRODUCT}\${PRODUCT}.lnk" "$INSTDIR\Spreadout.exe"
  ; A prompt where `spreadout` works, without changing the PATH of every program.
  ; $WINDIR\System32, not $SYSDIR, which this 32-bit installer sees as SysWOW64's 32-bit cmd.
  CreateShortcut "$SMPROGRAMS\${PRODUCT}\${PRODUCT} command prompt.lnk" "$WINDIR\System32\cmd.exe" \
    '/k "set PATH=$INSTDIR\bin;%PATH% && spreadout --version"' "$INSTDIR\Spreadout.ico"

  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${PRODUCT}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\Spreadout.exe"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" $0
SectionEnd

; Removes what the installer wrote and nothing else: runs, models and the pixel cache under
; %LOCALAPPDATA%\Spreadout are a person's own, and `spreadout cache --clear` empties the cache.
Section "Uninstall"
  Delete "$INSTDIR\Spreadout.exe"
  Delete "$INSTDIR\WebView2Loader.dll"
  Delete "$INSTDIR\Spreadout.ico"
  Delete "$INSTDIR\bin\spreadout.exe"
  RMDir "$INSTDIR\bin"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  Delete "$SMPROGRAMS\${PRODUCT}\${PRODUCT}.lnk"
  Delete "$SMPROGRAMS\${PRODUCT}\${PRODUCT} command prompt.lnk"
  RMDir "$SMPROGRAMS\${PRODUCT}"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
SectionEnd
