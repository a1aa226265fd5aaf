"""A marketer imports a GBK booth-scan export in Chromium: real upload, preview, confirm, summary."""

from __future__ import annotations

import re

from tests.e2e.conftest import act, login, screenshot, wait_idle

FILE = ("2026 工博会展位扫码名单\n"
        "姓名,手机,邮箱,公司,职位,备注\n"
        "浏览器甲,19987600001,jia@e2e-import.cn,上海云杉科技有限公司,市场总监,展位A3\n"
        "浏览器甲,1.9987600001E+10,,云杉科技,,再次扫码\n"
        "浏览器乙,13800138000,test@x.com,某公司,,\n"
        "浏览器丙,１９９８７６０００３,bing@e2e-import.cn,北京启明软件,IT经理,\n").encode("gbk")


def test_marketer_imports_a_file(page, app_server, tmp_path):
    path = tmp_path / "工博会扫码名单.csv"
    path.write_bytes(FILE)
    login(page, app_server, "marketer")
    sidebar = page.locator("[data-testid='stSidebar']")
    act(page, lambda: sidebar.get_by_text("渠道导入").click())
    page.get_by_text("上传文件").first.wait_for()
    act(page, lambda: page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(path)))
    page.get_by_text("表头在第 2 行").wait_for(timeout=60_000)
    page.get_by_text("文件内重复").first.wait_for()
    wait_idle(page)
    screenshot(page, "import-01-preview")
    act(page, lambda: page.get_by_role("button", name="确认导入").click())
    # The summary arrives with the rerun that follows the import (the progress bar may say "done" first).
    page.get_by_text(re.compile(r"导入完成：批次 #\d+，新线索 2，")).wait_for(timeout=60_000)
    wait_idle(page)
    screenshot(page, "import-02-done")
    assert page.get_by_text(re.compile(r"新线索 2，")).count() >= 1
