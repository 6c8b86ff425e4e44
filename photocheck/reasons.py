"""Reason codes of DESIGN §4.1 with their default severities and bilingual messages.

Messages are written for a village verifier standing at the house: each says what is
wrong and what to do next, so a retake can happen on the spot. The wording follows the
severity the policy gives: a reject reason asks for a retake, a review reason never does
(the photo is kept and the county looks at it). Drone photos of shared sites have their
own wording: no phone, no house front.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "DEFAULT_SEVERITY",
    "MESSAGES",
    "Message",
    "ReasonCode",
    "Severity",
    "Subject",
    "message_for",
]


class Severity(enum.StrEnum):
    REJECT = "reject"
    REVIEW = "review"


class Subject(enum.StrEnum):
    """What the photo is of: a household's house (phone) or a shared site (drone)."""

    HOUSE = "house"
    SITE = "site"


class ReasonCode(enum.StrEnum):
    UNREADABLE = "UNREADABLE"
    TOO_SMALL = "TOO_SMALL"
    BLURRY = "BLURRY"
    TOO_DARK = "TOO_DARK"
    TOO_BRIGHT = "TOO_BRIGHT"
    NO_HOUSE = "NO_HOUSE"
    SCREEN_PHOTO = "SCREEN_PHOTO"
    TILTED = "TILTED"
    NO_GPS = "NO_GPS"
    GPS_INVALID = "GPS_INVALID"
    GPS_OUTSIDE_AREA = "GPS_OUTSIDE_AREA"
    MOCK_LOCATION = "MOCK_LOCATION"
    NO_CAPTURE_TIME = "NO_CAPTURE_TIME"
    CAPTURE_TIME_IMPLAUSIBLE = "CAPTURE_TIME_IMPLAUSIBLE"
    EDITED = "EDITED"
    DUPLICATE_PHOTO = "DUPLICATE_PHOTO"
    SAME_SCENE = "SAME_SCENE"


R, V = Severity.REJECT, Severity.REVIEW

DEFAULT_SEVERITY: dict[ReasonCode, Severity] = {
    ReasonCode.UNREADABLE: R,
    ReasonCode.TOO_SMALL: R,
    ReasonCode.BLURRY: R,
    ReasonCode.TOO_DARK: R,
    ReasonCode.TOO_BRIGHT: R,
    ReasonCode.NO_HOUSE: R,
    ReasonCode.SCREEN_PHOTO: R,
    ReasonCode.TILTED: V,
    ReasonCode.NO_GPS: V,
    ReasonCode.GPS_INVALID: V,
    ReasonCode.GPS_OUTSIDE_AREA: V,
    ReasonCode.MOCK_LOCATION: V,
    ReasonCode.NO_CAPTURE_TIME: V,
    ReasonCode.CAPTURE_TIME_IMPLAUSIBLE: V,
    ReasonCode.EDITED: V,
    ReasonCode.DUPLICATE_PHOTO: R,
    ReasonCode.SAME_SCENE: V,
}


@dataclass(frozen=True)
class Message:
    zh: str
    en: str


C = ReasonCode
_KEPT_ZH, _KEPT_EN = (
    "照片已保留，将由县里审核，无需重拍",
    "the photo is kept for the county's review; no retake needed",
)


def _kept(zh: str, en: str) -> Message:
    return Message(f"{zh}；{_KEPT_ZH}", f"{en}: {_KEPT_EN}")


# A house photo whose reason rejects it: say what to do at the house, now.
_HOUSE_RETAKE: dict[ReasonCode, Message] = {
    C.UNREADABLE: Message(
        "照片文件无法读取（损坏、不完整或不是图片），请重新拍摄并上传",
        "The file cannot be read (damaged, incomplete or not a picture): take the photo again and upload it",
    ),
    C.TOO_SMALL: Message(
        "照片分辨率太低，请用手机相机原图重新拍摄，不要截图或压缩",
        "The photo's resolution is too low: retake it with the phone camera and upload the original, not a screenshot or compressed copy",
    ),
    C.BLURRY: Message(
        "照片模糊，请稳住手机、对准房屋重新拍摄",
        "Photo is blurred: hold the phone steady, focus on the house and retake",
    ),
    C.TOO_DARK: Message(
        "照片太暗，请在光线充足时重新拍摄，必要时打开闪光灯",
        "Photo is too dark: retake it in better light, with the flash if needed",
    ),
    C.TOO_BRIGHT: Message(
        "照片曝光过度，请避开逆光和强光直射重新拍摄",
        "Photo is over-exposed: avoid shooting into the sun or strong light and retake",
    ),
    C.NO_HOUSE: Message(
        "照片中没有房屋，请站在户门前拍摄房屋正面全貌",
        "No house in the photo: stand in front of the house and photograph its whole front",
    ),
    C.SCREEN_PHOTO: Message(
        "照片是截图、翻拍屏幕或翻拍照片，请到现场直接拍摄房屋",
        "This is a screenshot or a photo of a screen or print: photograph the house itself on site",
    ),
    C.TILTED: Message(
        "照片明显倾斜，请端平手机重新拍摄",
        "Photo is tilted: hold the phone level and retake",
    ),
    C.NO_GPS: Message(
        "照片没有定位信息，请打开手机定位后在现场重新拍摄",
        "Photo has no location: turn on the phone's location and retake it on site",
    ),
    C.GPS_INVALID: Message(
        "照片定位信息无效，请确认手机定位正常后重新拍摄",
        "Photo's location is invalid: check that the phone's location works and retake",
    ),
    C.GPS_OUTSIDE_AREA: Message(
        "照片拍摄位置离本户或本村太远，请在本户现场重新拍摄",
        "Photo was taken too far from the household or village: retake it at the house",
    ),
    C.MOCK_LOCATION: Message(
        "手机报告使用了模拟定位，请关闭虚拟定位后在现场重新拍摄",
        "The phone reports a mock location: turn it off and retake the photo on site",
    ),
    C.NO_CAPTURE_TIME: Message(
        "照片没有拍摄时间，请用手机相机直接重新拍摄，不要上传转存的图片",
        "Photo has no capture time: retake it with the phone camera instead of uploading a saved copy",
    ),
    C.CAPTURE_TIME_IMPLAUSIBLE: Message(
        "照片拍摄时间不合理（过早或在未来），请检查手机时间后重新拍摄",
        "Photo's capture time is implausible (too early or in the future): check the phone's clock and retake",
    ),
    C.EDITED: Message(
        "照片经过编辑软件处理，请用手机相机重新拍摄并上传原图",
        "Photo was processed by editing software: retake it with the phone camera and upload the original",
    ),
    C.DUPLICATE_PHOTO: Message(
        "这张照片已被其他农户使用，请为本户现场拍摄新照片",
        "This photo is already used for another household: take a new photo of this household's house",
    ),
    C.SAME_SCENE: Message(
        "照片与另一农户的照片拍的是同一处房屋，请在本户现场拍摄本户房屋",
        "Photo shows the same house as another household's photo: photograph this household's own house on site",
    ),
}

# A house photo whose reason only sends it to review: what was seen, and that it is kept.
_HOUSE_REVIEW: dict[ReasonCode, Message] = {
    C.UNREADABLE: _kept("照片文件有损坏", "Part of the file is damaged"),
    C.TOO_SMALL: _kept("照片分辨率偏低", "The photo's resolution is low"),
    C.BLURRY: _kept("照片有些模糊", "The photo is somewhat blurred"),
    C.TOO_DARK: _kept("照片偏暗", "The photo is dark"),
    C.TOO_BRIGHT: _kept("照片曝光偏强", "The photo is over-exposed"),
    C.NO_HOUSE: _kept("照片中未能识别出房屋", "No house was recognised in the photo"),
    C.SCREEN_PHOTO: _kept(
        "照片疑似截图或翻拍", "The photo may be a screenshot or a photo of a screen"
    ),
    C.TILTED: _kept("照片明显倾斜", "The photo is tilted"),
    C.NO_GPS: _kept("照片没有定位信息", "The photo has no location"),
    C.GPS_INVALID: _kept("照片定位信息无效", "The photo's location is invalid"),
    C.GPS_OUTSIDE_AREA: _kept(
        "照片拍摄位置离本户或本村较远", "The photo was taken far from the household or village"
    ),
    C.MOCK_LOCATION: _kept("手机报告使用了模拟定位", "The phone reports a mock location"),
    C.NO_CAPTURE_TIME: _kept("照片没有拍摄时间", "The photo has no capture time"),
    C.CAPTURE_TIME_IMPLAUSIBLE: _kept(
        "照片拍摄时间不合理（过早或在未来）",
        "The photo's capture time is implausible (too early or in the future)",
    ),
    C.EDITED: _kept("照片经过编辑软件处理", "The photo was processed by editing software"),
    C.DUPLICATE_PHOTO: _kept(
        "这张照片与其他农户的照片相同", "This photo is the same as another household's"
    ),
    C.SAME_SCENE: _kept(
        "照片与另一农户的照片拍的是同一处房屋",
        "The photo shows the same house as another household's photo",
    ),
}

# A drone photo of a shared site (relocation site, nursing home, public housing).
_SITE_RETAKE: dict[ReasonCode, Message] = {
    C.UNREADABLE: Message(
        "航拍照片文件无法读取（损坏、不完整或不是图片），请重新导出原图上传",
        "The drone photo cannot be read (damaged, incomplete or not a picture): export the original again and upload it",
    ),
    C.TOO_SMALL: Message(
        "航拍照片分辨率太低，请上传无人机拍摄的原图，不要截图或压缩",
        "The drone photo's resolution is too low: upload the drone's original, not a screenshot or compressed copy",
    ),
    C.BLURRY: Message(
        "航拍照片模糊，请悬停稳定后重新航拍",
        "The drone photo is blurred: hover steadily and fly the shot again",
    ),
    C.TOO_DARK: Message(
        "航拍照片太暗，请在光线充足时重新航拍",
        "The drone photo is too dark: fly the shot again in better light",
    ),
    C.TOO_BRIGHT: Message(
        "航拍照片曝光过度，请调整曝光后重新航拍",
        "The drone photo is over-exposed: adjust the exposure and fly the shot again",
    ),
    C.NO_HOUSE: Message(
        "航拍照片中没有安置点的建筑，请对准安置点重新航拍",
        "No buildings of the site in the drone photo: point the camera at the site and fly the shot again",
    ),
    C.SCREEN_PHOTO: Message(
        "照片是截图或翻拍，请上传无人机拍摄的原图",
        "This is a screenshot or a photo of a screen: upload the drone's original",
    ),
    C.TILTED: Message(
        "航拍照片明显倾斜，请调平云台后重新航拍",
        "The drone photo is tilted: level the gimbal and fly the shot again",
    ),
    C.NO_GPS: Message(
        "航拍照片没有定位信息，请上传带定位的无人机原图",
        "The drone photo has no location: upload the drone's original with its GPS data",
    ),
    C.GPS_INVALID: Message(
        "航拍照片定位信息无效，请上传带有效定位的无人机原图",
        "The drone photo's location is invalid: upload a drone original with a valid GPS fix",
    ),
    C.GPS_OUTSIDE_AREA: Message(
        "航拍位置离该安置点太远，请确认安置点后在其上空航拍",
        "The drone photo was taken too far from the site: check the site and fly over it",
    ),
    C.MOCK_LOCATION: Message(
        "定位被报告为模拟定位，请上传无人机拍摄的原图",
        "The location is reported as mocked: upload the drone's original",
    ),
    C.NO_CAPTURE_TIME: Message(
        "航拍照片没有拍摄时间，请上传无人机拍摄的原图，不要上传转存的图片",
        "The drone photo has no capture time: upload the drone's original, not a saved copy",
    ),
    C.CAPTURE_TIME_IMPLAUSIBLE: Message(
        "航拍照片拍摄时间不合理（过早或在未来），请校准无人机时间后重新航拍",
        "The drone photo's capture time is implausible (too early or in the future): set the drone's clock and fly the shot again",
    ),
    C.EDITED: Message(
        "航拍照片经过编辑软件处理，请上传无人机拍摄的原图",
        "The drone photo was processed by editing software: upload the drone's original",
    ),
    C.DUPLICATE_PHOTO: Message(
        "这张航拍照片已登记在其他安置点，请上传本安置点的航拍照片",
        "This drone photo is already registered for another site: upload a photo of this site",
    ),
    C.SAME_SCENE: Message(
        "航拍照片与其他安置点的照片拍的是同一处，请上传本安置点的航拍照片",
        "The drone photo shows the same place as another site's photo: upload a photo of this site",
    ),
}

_SITE_REVIEW: dict[ReasonCode, Message] = {
    C.UNREADABLE: _kept("航拍照片文件有损坏", "Part of the drone photo's file is damaged"),
    C.TOO_SMALL: _kept("航拍照片分辨率偏低", "The drone photo's resolution is low"),
    C.BLURRY: _kept("航拍照片有些模糊", "The drone photo is somewhat blurred"),
    C.TOO_DARK: _kept("航拍照片偏暗", "The drone photo is dark"),
    C.TOO_BRIGHT: _kept("航拍照片曝光偏强", "The drone photo is over-exposed"),
    C.NO_HOUSE: _kept(
        "航拍照片中未能识别出建筑", "No buildings were recognised in the drone photo"
    ),
    C.SCREEN_PHOTO: _kept(
        "照片疑似截图或翻拍", "The photo may be a screenshot or a photo of a screen"
    ),
    C.TILTED: _kept("航拍照片明显倾斜", "The drone photo is tilted"),
    C.NO_GPS: _kept("航拍照片没有定位信息", "The drone photo has no location"),
    C.GPS_INVALID: _kept("航拍照片定位信息无效", "The drone photo's location is invalid"),
    C.GPS_OUTSIDE_AREA: _kept(
        "航拍位置离该安置点较远", "The drone photo was taken far from the site"
    ),
    C.MOCK_LOCATION: _kept("定位被报告为模拟定位", "The location is reported as mocked"),
    C.NO_CAPTURE_TIME: _kept("航拍照片没有拍摄时间", "The drone photo has no capture time"),
    C.CAPTURE_TIME_IMPLAUSIBLE: _kept(
        "航拍照片拍摄时间不合理（过早或在未来）",
        "The drone photo's capture time is implausible (too early or in the future)",
    ),
    C.EDITED: _kept(
        "航拍照片经过编辑软件处理", "The drone photo was processed by editing software"
    ),
    C.DUPLICATE_PHOTO: _kept(
        "这张航拍照片与其他安置点的照片相同", "This drone photo is the same as another site's"
    ),
    C.SAME_SCENE: _kept(
        "航拍照片与其他安置点的照片拍的是同一处",
        "The drone photo shows the same place as another site's photo",
    ),
}

_TABLES = {
    (Subject.HOUSE, Severity.REJECT): _HOUSE_RETAKE,
    (Subject.HOUSE, Severity.REVIEW): _HOUSE_REVIEW,
    (Subject.SITE, Severity.REJECT): _SITE_RETAKE,
    (Subject.SITE, Severity.REVIEW): _SITE_REVIEW,
}


def message_for(code: ReasonCode, severity: Severity, subject: Subject = Subject.HOUSE) -> Message:
    """The verifier-facing message of a reason at the severity the policy gives it."""
    return _TABLES[subject, severity][code]


# Each code's house message at its default severity.
MESSAGES: dict[ReasonCode, Message] = {c: message_for(c, DEFAULT_SEVERITY[c]) for c in ReasonCode}
